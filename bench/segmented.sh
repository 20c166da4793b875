#!/usr/bin/env bash
# Segmented-download benchmark (not a test): nginx on loopback capping each connection with
# `limit_rate 4m;`, a 512 MiB file: `rushes download` (4 segments) vs `curl` vs `aria2c -x4 -s4`
# in the same run; then the same file uncapped: segmented vs one connection vs curl.
# Writes its numbers into BENCHMARKS.md. Installs nginx, curl, aria2 and GNU time when missing.
# SIZE_MIB=512 and RUNS=5 (uncapped runs) by default; SMOKE=1 runs a 64 MiB smoke version.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -x target/release/rushes ] || cargo build --release --bin rushes
exec python3 bench/segmented.py "$@"
