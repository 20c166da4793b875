#!/usr/bin/env bash
# `rushes feed check` on a 100,000-record feed (not a test): --json vs text vs jq, wall time and
# peak RSS, written into BENCHMARKS.md. Builds the release binary; installs jq and GNU time with
# apt-get when missing. SMOKE=1: 2,000 records, one run, nothing written.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v jq >/dev/null 2>&1 || missing+=(jq)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --locked --bin rushes
exec python3 bench/feed_check.py "$@"
