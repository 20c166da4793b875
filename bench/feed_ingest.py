#!/usr/bin/env python3
"""First ingest of a large feed by `rushes serve` (bench/feed.sh): an empty data folder,
DRY_RUN_DOWNLOADS=1, the feed on a loopback server without validators. While the service takes
the feed in, a prober asks /healthz and /api/deliveries?limit=50 every 10 ms (the page's own
query) and keeps each answer's latency. The ingest is done when the service logs its first
successful poll ("fetched N records"; the log is read, not the service asked, so that watching
costs the service nothing); its time is counted from the start of the process.

Usage: feed_ingest.py RUSHES_BIN FEED_URL WORK_DIR -> prints `key value` lines.
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

binary, feed_url, work = sys.argv[1:4]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
base = f"http://127.0.0.1:{port}"
data = os.path.join(work, "serve-data")
os.makedirs(data, exist_ok=True)
env = dict(os.environ, WEBHOOK_JSON_URL=feed_url, RUSHES_BIND=f"127.0.0.1:{port}",
           RUSHES_DATA_DIR=data, DOWNLOAD_DIR=os.path.join(work, "serve-downloads"),
           DRY_RUN_DOWNLOADS="1", WEBHOOK_MONITOR_INTERVAL="3600",
           RUST_LOG="warn,rushes::feed=info", NO_COLOR="1")
log_path = os.path.join(work, "serve.log")
log = open(log_path, "w")
start = time.perf_counter()
proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)


def get(path, timeout=5):
    with urllib.request.urlopen(base + path, timeout=timeout) as r:
        return r.read()


latencies = {"/healthz": [], "/api/deliveries?limit=50": [], "/": []}
stop = threading.Event()


def probe():
    while not stop.is_set():
        for path, lat in latencies.items():
            t = time.perf_counter()
            try:
                get(path)
                lat.append(time.perf_counter() - t)
            except OSError:
                pass  # not listening yet
        time.sleep(0.01)


prober = threading.Thread(target=probe, daemon=True)
prober.start()
done = None
peak_kb = 0
deadline = start + 300
while time.perf_counter() < deadline:
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            m = re.search(r"VmHWM:\s+(\d+)", f.read())
            peak_kb = max(peak_kb, int(m.group(1)) if m else 0)
    except OSError:
        pass
    with open(log_path, errors="replace") as f:
        if re.search(r"fetched \d+ records from (the feed|webhook)", f.read()):
            done = time.perf_counter() - start
            break
    if proc.poll() is not None:
        sys.exit(f"rushes serve exited with {proc.returncode}: see {log_path}")
    time.sleep(0.005)
stop.set()
prober.join()
stored = sum(int(n) for n in re.findall(r'rushes_deliveries\{state="[a-z_]+"\} (\d+)', get("/metrics").decode()))
proc.terminate()
proc.wait(timeout=20)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else float("nan")


print(f"ingest_s {done if done is not None else float('nan'):.3f}")
print(f"ingest_peak_rss_kb {peak_kb}")
print(f"ingest_records {stored}")
for path, lat in latencies.items():
    key = {"/healthz": "healthz", "/": "page"}.get(path, "deliveries")
    print(f"{key}_n {len(lat)}")
    print(f"{key}_p50_ms {pct(lat, 0.5):.1f}")
    print(f"{key}_max_ms {pct(lat, 1.0):.1f}")
