#!/usr/bin/env bash
# Runs every test of rushes. Installs what the tests need when it is missing (Chromium and
# ChromeDriver for the dashboard tests, from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The fake ngrok / cloudflared agents of tests/tunnel.rs are small Python scripts.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Benchmarks are not tests: they run with `cargo bench` and bench/*.sh and write BENCHMARKS.md.
# First pass: SQLite (the default backend).
env -u RUSHES_TEST_DATABASE_URL cargo test --locked --lib --bins --tests "$@"

# Second pass: the integration tests again on PostgreSQL (every data folder gets its own
# database), including the several-instances tests of tests/it/scale_out.rs. A throwaway server
# is started unless RUSHES_TEST_DATABASE_URL names one.
if [ -z "${RUSHES_TEST_DATABASE_URL:-}" ]; then
  # shellcheck source=scripts/pg.sh
  source scripts/pg.sh
  trap pg_stop EXIT
  pg_start
fi
cargo test --locked --test it "$@"
