#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests and benchmarks: `source scripts/pg.sh; pg_start` exports
# RUSHES_TEST_DATABASE_URL (a superuser on 127.0.0.1, trust authentication, fsync off: nothing in
# it must survive), `pg_stop` stops it and deletes its folder. Uses Debian's `postgresql`
# package (installed with apt-get when missing); as root, the server runs as the `postgres` user.

pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
  return 1
}

pg_start() {
  if ! pg_bin >/dev/null; then
    echo "installing postgresql (apt-get)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  fi
  local bin; bin="$(pg_bin)"
  PG_TMP="$(mktemp -d /tmp/rushes-pg.XXXXXX)"
  chmod 755 "$PG_TMP"
  PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PG_TMP"
    as=(runuser -u postgres --)
  fi
  PG_AS=("${as[@]}")
  PG_BIN="$bin"
  "${as[@]}" "$bin/initdb" -D "$PG_TMP/data" -U rushes --auth=trust --no-locale -E UTF8 >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  export RUSHES_TEST_DATABASE_URL="postgres://rushes@127.0.0.1:$PG_PORT/postgres"
  echo "PostgreSQL for the tests on 127.0.0.1:$PG_PORT ($PG_TMP)" >&2
}

pg_stop() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP/data" ]; then
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
