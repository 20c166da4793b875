#!/usr/bin/env python3
"""Segmented downloads vs curl and aria2c, one run of this script (see bench/segmented.sh).

1. nginx `limit_rate 4m;` (each connection capped at 4 MiB/s), SIZE_MIB (512) MiB file:
   curl, `aria2c -x4 -s4`, `rushes download` (DOWNLOAD_SEGMENTS=4), once each.
2. The same file uncapped: `rushes download` segmented vs one connection (DOWNLOAD_SEGMENTS=1)
   vs curl, RUNS (5) interleaved runs (the two rushes settings alternate which goes first), medians.
Every result file is checked (size, and rushes' SHA-256 against `sha256sum` of the source).
Files live in BENCH_DIR and BENCH_OUT (a tmpfs), both deleted at the end.
"""

import datetime
import hashlib
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.environ.get("SMOKE") == "1"
SIZE = int(os.environ.get("SIZE_MIB", "64" if SMOKE else "512")) << 20
RUNS = int(os.environ.get("RUNS", "1" if SMOKE else "5"))
# aria2c and rushes alternate this many times on the capped server (curl runs once: 2 min).
CAPPED_RUNS = int(os.environ.get("CAPPED_RUNS", "1" if SMOKE else "2"))
# UNCAPPED_ONLY=1: only the uncapped comparison, printed, BENCHMARKS.md untouched (experiments).
UNCAPPED_ONLY = os.environ.get("UNCAPPED_ONLY") == "1"
WORK = os.environ.get("BENCH_DIR", "/tmp/rushes-segbench")
OUT = os.environ.get("BENCH_OUT", "/dev/shm/rushes-segbench-out")
BIN = os.path.join(ROOT, "target/release/rushes")
NAME = "big.bin"
# (ms from the last byte to the hash, bytes left to hash then) of each segmented rushes run.
TAILS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path, size):
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        left = size
        while left:
            chunk = src.read(min(left, 16 << 20))
            dst.write(chunk)
            left -= len(chunk)


def start_nginx(capped, uncapped):
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
error_log {WORK}/nginx-error.log;
pid {WORK}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format requests "$status $body_bytes_sent";
    access_log {WORK}/access.log requests;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {WORK}/tmp;
    proxy_temp_path {WORK}/tmp;
    fastcgi_temp_path {WORK}/tmp;
    uwsgi_temp_path {WORK}/tmp;
    scgi_temp_path {WORK}/tmp;
    server {{
        listen 127.0.0.1:{capped};
        root {WORK}/www;
        default_type application/octet-stream;
        limit_rate 4m;
    }}
    server {{
        listen 127.0.0.1:{uncapped};
        root {WORK}/www;
        default_type application/octet-stream;
    }}
}}
""")
    os.makedirs(os.path.join(WORK, "tmp"), exist_ok=True)
    proc = subprocess.Popen(["nginx", "-p", WORK, "-c", conf])
    for port in (capped, uncapped):
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("nginx did not start")
    return proc


def clean_out():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    # nginx appends: emptied, the log then holds this run's requests only.
    open(os.path.join(WORK, "access.log"), "w").close()


def requests_made():
    """HTTP requests the last run made (nginx logs each one as it ends)."""
    path = os.path.join(WORK, "access.log")
    count, deadline = -1, time.monotonic() + 2
    while time.monotonic() < deadline:
        with open(path) as f:
            now = sum(1 for _ in f)
        if now == count:
            break
        count = now
        time.sleep(0.2)
    return count


def timed(cmd, env=None):
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode})")
    got = os.path.getsize(os.path.join(OUT, NAME))
    if got != SIZE:
        raise SystemExit(f"{cmd[0]}: {got} bytes, expected {SIZE}")
    return elapsed, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def curl(url):
    clean_out()
    return timed(["curl", "-s", "-f", "-o", os.path.join(OUT, NAME), url])[0]


def aria2(url):
    clean_out()
    return timed([
        "aria2c", "-q", "-x4", "-s4", "--file-allocation=none", "--allow-overwrite=true",
        "-d", OUT, "-o", NAME, url,
    ])[0]


def rushes(url, segments, expected_sha):
    clean_out()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "DOWNLOAD_SEGMENTS": str(segments),
        # Its "segmented download complete" line: what was left to hash after the last byte.
        "RUST_LOG": "rushes::download::transfer::segmented=info",
    }
    elapsed, stdout = timed([BIN, "download", url, "--out", OUT, "--name", NAME], env=env)
    sha = re.search(r"sha256 ([0-9a-f]{64})", stdout)
    if not sha or sha.group(1) != expected_sha:
        raise SystemExit(f"rushes: wrong SHA-256 in {stdout!r}")
    after = re.search(r"after_last_byte_ms=(\d+) hashed_before_last_byte=(\d+)", stdout)
    if after:
        TAILS.append((int(after.group(1)), SIZE - int(after.group(2))))
    return elapsed


def mib_s(seconds):
    return SIZE / (1 << 20) / seconds


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def hash_seconds(path):
    """How long one SHA-256 pass over the (page-cached) file takes: the end-of-download cost."""
    sha256_of(path)  # warm the cache
    started = time.monotonic()
    sha256_of(path)
    return time.monotonic() - started


def main():
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} missing: cargo build --release")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "www"))
    source = os.path.join(WORK, "www", NAME)
    print(f"creating {SIZE >> 20} MiB of random data", file=sys.stderr)
    make_file(source, SIZE)
    expected = sha256_of(source)
    hash_s = hash_seconds(source)
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    counts = lambda xs: ", ".join(str(x) for x in xs) or "-"
    capped_port, open_port = free_port(), free_port()
    load = os.getloadavg()[0]
    nginx = start_nginx(capped_port, open_port)
    try:
        capped = f"http://127.0.0.1:{capped_port}/{NAME}"
        uncapped = f"http://127.0.0.1:{open_port}/{NAME}"
        c_curl, c_arias, c_rushess = 1.0, [1.0], [1.0]
        if not UNCAPPED_ONLY:
            print("capped: curl", file=sys.stderr)
            c_curl = curl(capped)
            c_arias, c_rushess = [], []
        requests = {"aria2c": [], "rushes": []}
        for i in range(0 if UNCAPPED_ONLY else CAPPED_RUNS):
            print(f"capped run {i + 1}/{CAPPED_RUNS}: aria2c -x4 -s4, then rushes", file=sys.stderr)
            c_arias.append(aria2(capped))
            requests["aria2c"].append(requests_made())
            c_rushess.append(rushes(capped, 4, expected))
            requests["rushes"].append(requests_made())
        c_aria, c_rushes = statistics.median(c_arias), statistics.median(c_rushess)
        u = {"curl": [], "seg": [], "one": []}
        seg_requests = []
        for i in range(RUNS):
            print(f"uncapped run {i + 1}/{RUNS}", file=sys.stderr)
            u["curl"].append(curl(uncapped))
            # The two rushes runs alternate which goes first (right after curl's file is freed).
            for segments in (4, 1) if i % 2 == 0 else (1, 4):
                if segments == 4:
                    u["seg"].append(rushes(uncapped, 4, expected))
                    seg_requests.append(requests_made())
                else:
                    u["one"].append(rushes(uncapped, 1, expected))
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.rmtree(WORK, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in u.items()}
    tails = ", ".join(f"{ms} ms / {left / (1 << 20):.1f} MiB" for ms, left in TAILS) or "none"
    load_end = os.getloadavg()[0]
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = "\n".join([
        "<!-- segmented-bench:start (written by bench/segmented.sh) -->",
        f"Measured {now} on {os.cpu_count()} cores ({cpu}), Linux {platform.release()}; nginx on "
        f"loopback, {SIZE >> 20} MiB of random data, downloads into `{OUT}` (tmpfs); load average "
        f"at start {load:.1f}, at the end {load_end:.1f} (shared machine). rushes also computes the SHA-256 (checked against "
        f"`sha256sum` of the source); curl and aria2c do not.",
        "",
        f"| capped (`limit_rate 4m;` per connection); aria2c and rushes alternated {CAPPED_RUNS}x, medians | time | throughput | vs curl | all runs (s) | HTTP requests per run |",
        "|---|---|---|---|---|---|",
        f"| `curl -o` (reference) | {c_curl:.2f} s | {mib_s(c_curl):.2f} MiB/s | 1.00x | {c_curl:.2f} | 1 |",
        f"| `aria2c -x4 -s4` | {c_aria:.2f} s | {mib_s(c_aria):.2f} MiB/s | {c_curl / c_aria:.3f}x | {runs(c_arias)} | {counts(requests['aria2c'])} |",
        f"| `rushes download` (DOWNLOAD_SEGMENTS=4) | {c_rushes:.2f} s | {mib_s(c_rushes):.2f} MiB/s | **{c_curl / c_rushes:.3f}x** | {runs(c_rushess)} | {counts(requests['rushes'])} |",
        "",
        f"| uncapped, median of {RUNS} interleaved runs | median time | throughput | all runs (s) |",
        "|---|---|---|---|",
        f"| `curl -o` | {med['curl']:.2f} s | {mib_s(med['curl']):.0f} MiB/s | {runs(u['curl'])} |",
        f"| `rushes download`, one connection (DOWNLOAD_SEGMENTS=1, reference) | {med['one']:.2f} s | {mib_s(med['one']):.0f} MiB/s | {runs(u['one'])} |",
        f"| `rushes download`, DOWNLOAD_SEGMENTS=4 ({counts(seg_requests)} HTTP requests) | {med['seg']:.2f} s | {mib_s(med['seg']):.0f} MiB/s | {runs(u['seg'])} |",
        f"| segmented / one connection | **{med['one'] / med['seg']:.2f}x** throughput | | |",
        "",
        f"SHA-256 of the whole file: one pass over the page-cached file takes {hash_s:.2f} s here "
        f"for {SIZE >> 20} MiB (Python hashlib, OpenSSL). rushes hashes in order on a thread "
        "that follows the contiguous prefix on disk; its ranges complete one after the other "
        "(staggered lengths, the earliest range split first), so when the last byte arrives "
        f"little is left to hash: {tails} (segmented runs: ms from the last byte to the hash, "
        "bytes still to hash then). Uncapped, the download stays on one connection (its probe "
        "finds it fast), so the segmented setting costs nothing there "
        "(see `src/download/transfer/segmented.rs`).",
        "<!-- segmented-bench:end -->",
    ])
    print(block)
    if SMOKE or UNCAPPED_ONLY:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    start = text.find("<!-- segmented-bench:start")
    end = text.find("<!-- segmented-bench:end -->")
    if start >= 0 and end > start:
        text = text[:start] + block + text[end + len("<!-- segmented-bench:end -->"):]
    else:
        text = text.rstrip("\n") + (
            "\n\n## Segmented downloads (`bench/segmented.sh`)\n\n"
            "Target: with each connection capped, at least the speed-up of `aria2c -x4 -s4` over "
            "curl; uncapped, no slower than the single-connection path.\n\n" + block + "\n")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
