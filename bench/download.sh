#!/usr/bin/env bash
# Download benchmark (not a test): rushes download vs curl -o on loopback from the same nginx,
# peak RSS for 1 GiB vs 4 GiB, 3 concurrent downloads. Writes its numbers into BENCHMARKS.md.
# Needs nginx, curl and GNU time (apt-get install nginx-light curl time). RUNS=5 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/download.py "$@"
