#!/usr/bin/env bash
# Download benchmark (not a test): rushes download vs curl -o on loopback from the same nginx,
# peak RSS for 1 GiB vs 4 GiB, 3 concurrent downloads. Writes its numbers into BENCHMARKS.md.
# Installs nginx, curl and GNU time with apt-get when missing. RUNS=5 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/time ] || missing+=(time)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec python3 bench/download.py "$@"
