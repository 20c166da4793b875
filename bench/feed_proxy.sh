#!/usr/bin/env bash
# feed-proxy benchmark (not a test): requests/s of `rushes feed-proxy` (bearer token check, rate
# limits per token and per address, shared cache with ETag, audit log line per request) next to
# nginx serving the same feed file directly, same load generator (wrk), same run, loopback.
# Installs wrk and nginx with apt-get when missing. Writes its numbers into BENCHMARKS.md.
#   DURATION=10 CONNECTIONS=64 bash bench/feed_proxy.sh     (SMOKE=1: 2 s, BENCHMARKS.md untouched)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
if [ "${SMOKE:-0}" = 1 ]; then DURATION=2; fi
cargo build --release --quiet
BIN="$ROOT/target/release/rushes"
WORK=$(mktemp -d /tmp/rushes-proxy-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as another user
cleanup() {
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null || true
  [ -n "${NGINX_PID:-}" ] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; exit 1
}

# A feed of 300 deliveries (about 90 KB), as the studio's feed looks.
mkdir -p "$WORK/www" "$WORK/tmp"
python3 - "$WORK/www/feed.json" <<'PY'
import json, sys
records = [{
    "source_url": f"https://www.dropbox.com/scl/fo/{i:08x}/delivery-{i}?rlkey=k{i:06d}&dl=0",
    "r2_url": f"https://server.example.workers.dev/dropbox/bucket/obj{i}/file?X-Amz-Signature={i:064x}",
    "provider": "dropbox",
    "created_at": "2026-01-08T20:19:38+00:00",
    "original_filename": f"{i:03d} Client rushes day {i % 7}.zip",
} for i in range(300)]
open(sys.argv[1], "w").write(json.dumps(records))
PY
chmod -R a+rX "$WORK/www"
FEED_BYTES=$(stat -c %s "$WORK/www/feed.json")

NGINX_PORT=$(free_port)
cat > "$WORK/nginx.conf" <<CONF
worker_processes auto;
daemon off;
error_log $WORK/nginx-error.log;
pid $WORK/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $WORK/tmp;
    proxy_temp_path $WORK/tmp;
    fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp;
    scgi_temp_path $WORK/tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        default_type application/json;
    }
}
CONF
nginx -p "$WORK" -c "$WORK/nginx.conf" &
NGINX_PID=$!
wait_port "$NGINX_PORT"

TOKEN="bench-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "bench:$TOKEN" > "$WORK/tokens"
PROXY_PORT=$(free_port)
FEED_PROXY_UPSTREAM="http://127.0.0.1:$NGINX_PORT/feed.json" \
FEED_PROXY_BIND="127.0.0.1:$PROXY_PORT" \
FEED_PROXY_TOKENS_FILE="$WORK/tokens" \
FEED_PROXY_CACHE_TTL=10 \
FEED_PROXY_RATE_PER_TOKEN=1000000000 \
FEED_PROXY_RATE_PER_CLIENT=1000000000 \
FEED_PROXY_AUDIT_LOG="$WORK/audit.jsonl" \
FEED_PROXY_AUDIT_MAX_BYTES=4000000000 \
RUSHES_LOG_DIR="$WORK/logs" RUST_LOG=warn \
  "$BIN" feed-proxy >/dev/null 2>&1 &
PROXY_PID=$!
wait_port "$PROXY_PORT"

run_wrk() { # url [header] -> "req/s p50_ms p99_ms non2xx"
  local out
  if [ -n "${2:-}" ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$2" "$1")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$1")
  fi
  echo "$out" >&2
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m: return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
errors = re.search(r"Socket errors: (.*)", out)
print(f"{rps:.0f} {ms('50'):.2f} {ms('99'):.2f} {bad.group(1) if bad else 0} {'yes' if errors else 'no'}")
PY
}

# Warm up both (first proxy request fills the cache), then interleave: nginx, proxy, nginx, proxy.
curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/feed.json"
curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PROXY_PORT/feed"
CHECK=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/feed")
[ "$CHECK" = 401 ] || { echo "the proxy answered $CHECK without a token" >&2; exit 1; }
N1=$(run_wrk "http://127.0.0.1:$NGINX_PORT/feed.json")
P1=$(run_wrk "http://127.0.0.1:$PROXY_PORT/feed" "Authorization: Bearer $TOKEN")
N2=$(run_wrk "http://127.0.0.1:$NGINX_PORT/feed.json")
P2=$(run_wrk "http://127.0.0.1:$PROXY_PORT/feed" "Authorization: Bearer $TOKEN")
ETAG=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PROXY_PORT/feed" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
P304=$(run_wrk "http://127.0.0.1:$PROXY_PORT/feed" "Authorization: Bearer $TOKEN
If-None-Match: $ETAG" 2>/dev/null || true)
# One file: the bench sets the rotation size above what it writes (the default, 10 MiB, would
# rotate and drop lines this count needs).
AUDIT_LINES=$(wc -l < "$WORK/audit.jsonl" || echo 0)
UPSTREAM_ASKED=$(grep -c '"upstream_ms":[0-9]' "$WORK/audit.jsonl" || true)

python3 - "$ROOT/BENCHMARKS.md" "$N1" "$P1" "$N2" "$P2" "$FEED_BYTES" "$DURATION" "$CONNECTIONS" "$THREADS" "$AUDIT_LINES" "$UPSTREAM_ASKED" "${SMOKE:-0}" "${P304:-nan nan nan 0 no}" <<'PY'
import os, platform, sys, datetime, statistics
path, n1, p1, n2, p2, size, dur, conns, threads, audit, upstream, smoke, p304 = sys.argv[1:]
def parse(s):
    rps, p50, p99, bad, err = s.split()
    return float(rps), float(p50), float(p99), int(bad), err
n = [parse(n1), parse(n2)]; p = [parse(p1), parse(p2)]
nr = statistics.mean(x[0] for x in n); pr = statistics.mean(x[0] for x in p)
cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError: pass
load = os.getloadavg()[0]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
rows = [
    "| | nginx, the file directly | rushes feed-proxy | proxy / nginx |",
    "|---|---|---|---|",
    f"| requests/s (mean of 2 runs) | {nr:.0f} | **{pr:.0f}** | {pr / nr:.2f}x |",
    f"| runs | {n[0][0]:.0f}, {n[1][0]:.0f} | {p[0][0]:.0f}, {p[1][0]:.0f} | |",
    f"| latency p50 / p99 (ms) | {n[0][1]:.2f} / {n[0][2]:.2f} | {p[0][1]:.2f} / {p[0][2]:.2f} | |",
    f"| non-2xx answers | {n[0][3] + n[1][3]} | {p[0][3] + p[1][3]} | |",
    f"| proxy answering 304 to `If-None-Match` (requests/s) | | {parse(p304)[0]:.0f} | {parse(p304)[0] / nr:.2f}x |",
]
text = f"""<!-- feed-proxy-bench:start (written by bench/feed_proxy.sh) -->
## Feed proxy (`bench/feed_proxy.sh`)

Measured {now} on {os.cpu_count()} cores ({cpu}), Linux {platform.release()}; load average at start {load:.1f} (the machine is shared).
Command: `wrk -t{threads} -c{conns} -d{dur}s --latency`, runs interleaved nginx, proxy, nginx, proxy. The feed is a
{int(size) // 1024} KiB JSON file of 300 deliveries. nginx (`worker_processes auto`, sendfile) serves it from disk cache;
`rushes feed-proxy` (release build) serves it with every request's bearer token checked (constant time), both
rate limits checked (limits set out of reach so that all requests pass), the shared cache (`FEED_PROXY_CACHE_TTL=10`, upstream =
that nginx) and one JSON audit line written per request ({audit} lines; upstream asked {upstream} time(s)).

""" + "\n".join(rows) + "\n<!-- feed-proxy-bench:end -->"
if smoke == "1":
    print(text); sys.exit(0)
doc = open(path).read()
start, end = "<!-- feed-proxy-bench:start", "<!-- feed-proxy-bench:end -->"
if start in doc:
    a = doc.index(start); b = doc.index(end) + len(end)
    doc = doc[:a] + text + doc[b:]
else:
    doc = doc.rstrip("\n") + "\n\n" + text + "\n"
open(path, "w").write(doc)
print(text)
PY
