#!/usr/bin/env bash
# Upload benchmark (not a test): `rushes frameio upload` vs `curl -T` of the same bytes in one
# stream, both to the same local stand-in of the presigned-PUT endpoint on loopback (nginx taking
# PUTs), measured in the same run; peak RSS of rushes. Writes its numbers into BENCHMARKS.md.
# Installs nginx, curl and GNU time with apt-get when missing. SIZE_MIB=3072 and RUNS=3 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec python3 bench/upload.py "$@"
