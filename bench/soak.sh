#!/usr/bin/env bash
# Soak: one release rushes under the load of issue 28 for SOAK_MINUTES (default 120), sampled
# every 30 s (RSS, fds, threads, data folder, app.log, WAL, /healthz latency, webhook p99,
# pending events), slopes after warm-up written between the soak markers of BENCHMARKS.md.
#
#   SOAK_MINUTES=5 bash bench/soak.sh                  # a quick end-to-end run
#   SOAK_DIR=/work/soak-run SOAK_MINUTES=100 nohup bash bench/soak.sh &
#
# SOAK_DIR (default: a temp folder) gets soak.csv, the run's data/logs and rushes.out;
# SOAK_BENCHMARKS (default: BENCHMARKS.md here) is the file whose section is written;
# SOAK_FEED_WINDOW=N keeps the feed at its newest N records (a feed of constant size, to tell
# memory that grows with the data from memory that grows with time).
# The load itself (feed, file server, fake Frame.io, webhooks, live pages) is bench/soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
minutes="${SOAK_MINUTES:-120}"
dir="${SOAK_DIR:-$(mktemp -d /tmp/rushes-soak.XXXXXX)}"
benchmarks="${SOAK_BENCHMARKS:-$root/BENCHMARKS.md}"
mkdir -p "$dir"
echo "building the release binary" >&2
cargo build --release --quiet
# A copy: a later build in this folder does not change the binary under a running soak.
cp target/release/rushes "$dir/rushes"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
exec python3 bench/soak.py --bin "$dir/rushes" --minutes "$minutes" --dir "$dir" \
  --benchmarks "$benchmarks" --commit "$commit" ${SOAK_FEED_WINDOW:+--feed-window "$SOAK_FEED_WINDOW"}
