#!/usr/bin/env bash
# Several instances on one PostgreSQL vs one SQLite instance (bench/scale_out.rs): starts a
# throwaway PostgreSQL (scripts/pg.sh) unless RUSHES_BENCH_DATABASE_URL is set, runs the
# benchmark in a release build and writes its section of BENCHMARKS.md.
#   BENCH_SECONDS=5 BENCH_DOWNLOADS=10000 BENCH_WORKERS=8 BENCH_RECORDS=100000 bash bench/scale_out.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RUSHES_BENCH_DATABASE_URL:-}" ]; then
  # shellcheck source=scripts/pg.sh
  source scripts/pg.sh
  trap pg_stop EXIT
  pg_start
  export RUSHES_BENCH_DATABASE_URL="$RUSHES_TEST_DATABASE_URL"
fi
cargo bench --locked --bench scale_out
