#!/usr/bin/env bash
# Fault suite (not a test, not in CI): the release `rushes serve` against a feed that is down, slow,
# garbage or huge, file servers that drop connections or splice versions, a full disk, SIGKILL
# during downloads and during a webhook burst, and the attacks of issue 13. Writes FAULTS.md.
#   bash bench/faults.sh                 every fault
#   bash bench/faults.sh slow spliced    only the faults whose function name contains a word (FAULTS.md untouched)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sqlite3 >/dev/null 2>&1 || true
cargo build --release --quiet
exec python3 bench/faults.py "$@"
