#!/usr/bin/env python3
"""Download benchmark: `rushes download` vs `curl -o` on loopback from the same nginx.

Measures, in one run of this script:
  1. throughput for a 1 GiB file, median of RUNS runs each, runs interleaved (curl, rushes, ...);
  2. peak RSS (GNU time) of `rushes download` for 1 GiB and 4 GiB;
  3. 3 concurrent downloads by the `rushes serve` engine (3 hosts: 127.0.0.1/2/3), each one's
     mean speed, vs 3 concurrent curls.
and writes the numbers into BENCHMARKS.md (between the download-bench markers).

Files are served by nginx (sendfile) from BENCH_DIR (page-cached after the first read) and
downloaded into BENCH_OUT, a tmpfs by default, so both clients are measured without the disk.

Disk mode (`download.sh --disk [FOLDER]`): 1 GiB into a folder on a real disk (default: a folder
beside ./downloads, the same disk as the downloads), interleaved runs of `curl -o` (no sync),
`dd if=/dev/zero bs=1M count=1024 conv=fsync` (what the disk durably takes), `curl -o` + `sync`
and `rushes download` (fsync before the rename). The limit is the slower of curl and dd; the
ratio is rushes' throughput over the limit's. `--smoke` (64 MiB, one run, nothing written).

Engine disk mode (`download.sh --disk --engine [FOLDER]`): the `rushes serve` engine taking 3
deliveries of SIZE_MIB (default 1024, so 3 GiB in all) at once from 3 hosts into the folder, vs
the limit for the same 3 GiB on the same folder: the slower of 3 concurrent `curl -o` and
`dd … conv=fsync` of 3 GiB; interleaved runs (RUNS=3), `sync` between runs. The engine's time is
its transfer window (first start to last finish, as the service recorded them: the final fsync
included). Goal: within 15 % of the limit.
"""

import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "5"))
WORK = os.environ.get("BENCH_DIR", "/tmp/rushes-bench")
OUT = os.environ.get("BENCH_OUT", "/dev/shm/rushes-bench-out")
BIN = os.path.join(ROOT, "target/release/rushes")
TIME = "/usr/bin/time"
GIB = 1 << 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    print(f"creating {path} ({size >> 20} MiB of random data)", file=sys.stderr)
    with open("/dev/urandom", "rb") as src, open(path + ".tmp", "wb") as dst:
        left = size
        while left:
            chunk = src.read(min(left, 16 << 20))
            dst.write(chunk)
            left -= len(chunk)
    os.rename(path + ".tmp", path)


def start_nginx(port):
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
error_log {WORK}/nginx-error.log;
pid {WORK}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {WORK}/tmp;
    proxy_temp_path {WORK}/tmp;
    fastcgi_temp_path {WORK}/tmp;
    uwsgi_temp_path {WORK}/tmp;
    scgi_temp_path {WORK}/tmp;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.2:{port};
        listen 127.0.0.3:{port};
        root {WORK}/www;
        default_type application/octet-stream;
    }}
}}
""")
    os.makedirs(os.path.join(WORK, "tmp"), exist_ok=True)
    proc = subprocess.Popen(["nginx", "-p", WORK, "-c", conf])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start")


def timed(cmd):
    """Runs cmd under GNU time: (seconds, peak RSS in KiB)."""
    stats = os.path.join(WORK, "time.out")
    subprocess.run(
        [TIME, "-f", "%e %M", "-o", stats] + cmd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with open(stats) as f:
        elapsed, rss = f.read().split()[-2:]
    return float(elapsed), int(rss)


def clean_out():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)


def curl(url, name):
    return timed(["curl", "-s", "-f", "-o", os.path.join(OUT, name), url])


def curl_sha(url, name):
    """curl doing the same work as rushes: save the file and SHA-256 it while streaming."""
    out = os.path.join(OUT, name)
    return timed(["sh", "-c", f"curl -s -f '{url}' | tee '{out}' | openssl dgst -sha256 >/dev/null"])


def rushes(url, name):
    return timed([BIN, "download", url, "--out", OUT, "--name", name])


def mib_s(size, seconds):
    return size / (1 << 20) / seconds


def engine_concurrent(port, names):
    """3 deliveries through `rushes serve`: per-delivery mean speed and total wall time."""
    data = os.path.join(WORK, "serve")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    feed = os.path.join(data, "feed.json")
    records = [
        {
            "source_url": f"http://127.0.0.{i + 1}:{port}/{name}",
            "provider": "dropbox",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": f"engine-{i}.bin",
        }
        for i, name in enumerate(names)
    ]
    with open(feed, "w") as f:
        json.dump(records, f)
    bind = f"127.0.0.1:{free_port()}"
    env = dict(os.environ)
    env.update(
        {
            "WEBHOOK_JSON_URL": feed,
            "RUSHES_BIND": bind,
            "RUSHES_DATA_DIR": os.path.join(data, "db"),
            "RUSHES_LOG_DIR": os.path.join(data, "logs"),
            "LOCAL_DOWNLOADS_DIR": OUT,
            "DOWNLOAD_CONCURRENCY": "3",
            # The records are dated in the past: no age limit, or they would only be listed.
            "DOWNLOAD_MAX_AGE": "0",
            "RUST_LOG": "warn",
        }
    )
    clean_out()
    started = time.monotonic()
    proc = subprocess.Popen(
        [BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{bind}/api/deliveries") as r:
                    rows = json.load(r)["deliveries"]
                if len(rows) == 3 and all(d["state"] in ("done", "failed") for d in rows):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        wall = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    bad = [d for d in rows if d["state"] != "done"]
    if bad:
        raise SystemExit(f"engine downloads failed: {bad}")
    speeds = [d["mean_speed_bps"] / (1 << 20) for d in rows]
    durations = [d["duration_ms"] / 1000 for d in rows]
    # The transfer window: first start to last finish, as the service recorded them.
    when = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    window = (max(when(d["finished_at"]) for d in rows)
              - min(when(d["started_at"]) for d in rows)).total_seconds()
    return speeds, durations, window


def curl_concurrent(port, names):
    clean_out()
    started = time.monotonic()
    procs = []
    for i, name in enumerate(names):
        procs.append(
            subprocess.Popen(
                [
                    "curl", "-s", "-f", "-o", os.path.join(OUT, f"curl-{i}.bin"),
                    "-w", "%{speed_download} %{time_total}",
                    f"http://127.0.0.{i + 1}:{port}/{name}",
                ],
                stdout=subprocess.PIPE,
            )
        )
    speeds, durations = [], []
    for p in procs:
        out, _ = p.communicate()
        speed, total = out.decode().split()
        speeds.append(float(speed) / (1 << 20))
        durations.append(float(total))
    return speeds, durations, time.monotonic() - started


def curl_sha_concurrent(port, names):
    """3 x (curl | tee | openssl dgst -sha256): the same work as the engine, wall time."""
    clean_out()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            ["sh", "-c",
             f"curl -s -f http://127.0.0.{i + 1}:{port}/{name} | tee {OUT}/sha-{i}.bin"
             " | openssl dgst -sha256 >/dev/null"]
        )
        for i, name in enumerate(names)
    ]
    for p in procs:
        p.wait()
    return time.monotonic() - started


def main():
    for tool in ("nginx", "curl", TIME):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install nginx-light curl time)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    os.makedirs(os.path.join(WORK, "www"), exist_ok=True)
    one = os.path.join(WORK, "www", "1g.bin")
    four = os.path.join(WORK, "www", "4g.bin")
    make_file(one, GIB)
    make_file(four, 4 * GIB)
    load = os.getloadavg()
    port = free_port()
    nginx = start_nginx(port)
    try:
        url = f"http://127.0.0.1:{port}/1g.bin"
        # Warm the page cache and the server.
        clean_out()
        curl(url, "warm.bin")
        curl_times, rushes_times, curl_rss, rushes_rss, sha_times = [], [], [], [], []
        for run in range(RUNS):
            clean_out()
            t, m = curl(url, "curl.bin")
            curl_times.append(t)
            curl_rss.append(m)
            t, m = rushes(url, "rushes.bin")
            rushes_times.append(t)
            rushes_rss.append(m)
            os.remove(os.path.join(OUT, "curl.bin"))
            t, _ = curl_sha(url, "curl-sha.bin")
            sha_times.append(t)
            os.rename(os.path.join(OUT, "curl-sha.bin"), os.path.join(OUT, "curl.bin"))
            print(f"run {run + 1}: curl {curl_times[-1]:.2f} s, rushes {rushes_times[-1]:.2f} s, "
                  f"curl+sha256 {sha_times[-1]:.2f} s", file=sys.stderr)
        # Same bytes: rushes' file equals curl's.
        same = subprocess.run(["cmp", "-s", os.path.join(OUT, "curl.bin"),
                               os.path.join(OUT, "rushes.bin")]).returncode == 0
        clean_out()
        curl(f"http://127.0.0.1:{port}/4g.bin", "warm4.bin")
        clean_out()
        t4, rss4 = rushes(f"http://127.0.0.1:{port}/4g.bin", "rushes4.bin")
        clean_out()
        c4, crss4 = curl(f"http://127.0.0.1:{port}/4g.bin", "curl4.bin")
        clean_out()
        names = ["1g.bin"] * 3
        e_speeds, e_durations, e_wall = engine_concurrent(port, names)
        c_speeds, c_durations, c_wall = curl_concurrent(port, names)
        s_wall = curl_sha_concurrent(port, names)
        clean_out()
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()

    curl_med = statistics.median(curl_times)
    rushes_med = statistics.median(rushes_times)
    ratio = curl_med / rushes_med
    sha_med = statistics.median(sha_times)
    sha_ratio = sha_med / rushes_med
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    e_total = 3 * GIB / (1 << 20) / e_wall
    c_total = 3 * GIB / (1 << 20) / c_wall
    lines = [
        "<!-- download-bench:start (written by bench/download.sh) -->",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"nginx (sendfile) on loopback, downloads into `{OUT}` (tmpfs), {RUNS} interleaved runs; "
        f"load average at start {load[0]:.1f} (the machine is shared: single runs vary a lot).",
        "",
        "| 1 GiB over loopback | curl -o | rushes download | rushes / curl |",
        "|---|---|---|---|",
        f"| median time | {curl_med:.2f} s | {rushes_med:.2f} s | {ratio:.2f}x throughput |",
        f"| median throughput | {mib_s(GIB, curl_med):.0f} MiB/s | {mib_s(GIB, rushes_med):.0f} MiB/s | |",
        f"| all runs | {', '.join(f'{t:.2f}' for t in curl_times)} | "
        f"{', '.join(f'{t:.2f}' for t in rushes_times)} | |",
        f"| peak RSS | {max(curl_rss) / 1024:.1f} MiB | {max(rushes_rss) / 1024:.1f} MiB | |",
        "",
        f"Same work for curl (save + SHA-256 while streaming: `curl | tee file | openssl dgst -sha256`): "
        f"median {sha_med:.2f} s ({', '.join(f'{t:.2f}' for t in sha_times)}); "
        f"rushes / that = {sha_ratio:.2f}x throughput.",
        "",
        f"rushes also computes SHA-256 while streaming and fsyncs before the rename; "
        f"the saved bytes are identical to curl's: {'yes' if same else 'NO'}.",
        "",
        "| Peak RSS vs file size | 1 GiB | 4 GiB |",
        "|---|---|---|",
        f"| rushes download | {max(rushes_rss) / 1024:.1f} MiB | {rss4 / 1024:.1f} MiB "
        f"({mib_s(4 * GIB, t4):.0f} MiB/s) |",
        f"| curl -o | {max(curl_rss) / 1024:.1f} MiB | {crss4 / 1024:.1f} MiB "
        f"({mib_s(4 * GIB, c4):.0f} MiB/s) |",
        "",
        "| 3 concurrent 1 GiB downloads (3 hosts) | each (MiB/s) | min / max | total |",
        "|---|---|---|---|",
        f"| rushes serve engine (DOWNLOAD_CONCURRENCY=3) | "
        f"{', '.join(f'{s:.0f}' for s in e_speeds)} | {min(e_speeds) / max(e_speeds):.2f} | "
        f"{e_total:.0f} MiB/s ({e_wall:.2f} s, first start to last finish) |",
        f"| 3 x curl -o | {', '.join(f'{s:.0f}' for s in c_speeds)} | "
        f"{min(c_speeds) / max(c_speeds):.2f} | {c_total:.0f} MiB/s ({c_wall:.2f} s) |",
        "",
        f"| 3 x (curl piped to tee + openssl sha256): the same work | | | "
        f"{3 * GIB / (1 << 20) / s_wall:.0f} MiB/s ({s_wall:.2f} s) |",
        "",
        f"Engine total vs 3 curls: {e_total / c_total:.2f}x; vs 3 curls doing the same work "
        f"(save + SHA-256): {s_wall / e_wall:.2f}x.",
        "<!-- download-bench:end -->",
    ]
    block = "\n".join(lines)
    print(block)
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    start = text.find("<!-- download-bench:start")
    end = text.find("<!-- download-bench:end -->")
    if start >= 0 and end >= 0:
        text = text[:start] + block + text[end + len("<!-- download-bench:end -->"):]
    else:
        if not text:
            text = "# Benchmarks\n"
        text += (
            "\n## Downloads (`bench/download.sh`)\n\n"
            "Target: throughput at least 0.95x curl, peak RSS under 40 MiB and independent of the "
            "file size, concurrent downloads sharing the link equally.\n\n" + block + "\n"
        )
    with open(path, "w") as f:
        f.write(text)


def disk_main(args):
    smoke = "--smoke" in args
    rest = [a for a in args if not a.startswith("--")]
    out = rest[0] if rest else os.path.join(ROOT, "downloads-bench-disk")
    size_mib = 64 if smoke else int(os.environ.get("SIZE_MIB", "1024"))
    runs = 1 if smoke else int(os.environ.get("RUNS", "3"))
    global OUT
    OUT = out
    for tool in ("nginx", "curl", TIME, "dd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install nginx-light curl time)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    os.makedirs(os.path.join(WORK, "www"), exist_ok=True)
    src = os.path.join(WORK, "www", f"{size_mib}m.bin")
    make_file(src, size_mib << 20)
    os.makedirs(out, exist_ok=True)
    out_fs = subprocess.run(["df", "--output=fstype,source", out], capture_output=True,
                            text=True).stdout.split()[-2:]
    load = os.getloadavg()
    port = free_port()
    nginx = start_nginx(port)
    times = {"curl": [], "dd": [], "curl+sync": [], "rushes": []}
    try:
        url = f"http://127.0.0.1:{port}/{size_mib}m.bin"
        clean_out()
        curl(url, "warm.bin")

        def settle():
            clean_out()
            subprocess.run(["sync"], check=True)

        for run in range(runs):
            settle()
            times["curl"].append(curl(url, "curl.bin")[0])
            settle()
            times["dd"].append(timed(["dd", "if=/dev/zero", f"of={os.path.join(OUT, 'dd.bin')}",
                                      "bs=1M", f"count={size_mib}", "conv=fsync"])[0])
            settle()
            times["curl+sync"].append(timed(["sh", "-c", f"curl -s -f -o '{OUT}/cs.bin' '{url}' && sync"])[0])
            settle()
            times["rushes"].append(rushes(url, "rushes.bin")[0])
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  file=sys.stderr)
        settle()
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()
        shutil.rmtree(out, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    limit = max(med["curl"], med["dd"])
    limiter = "curl -o" if med["curl"] >= med["dd"] else "dd conv=fsync"
    ratio = limit / med["rushes"]
    lines = [
        "<!-- download-disk:start (written by bench/download.sh --disk) -->",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}; {size_mib} MiB from nginx "
        f"on loopback into a folder on a real disk ({out_fs[0]} on {out_fs[1]}), {runs} interleaved runs, "
        f"`sync` between runs; load average at start {load[0]:.1f}.",
        "",
        "| into a real disk | median | all runs |",
        "|---|---|---|",
    ] + [
        f"| {k} | {med[k]:.2f} s ({mib_s(size_mib << 20, med[k]):.0f} MiB/s) | "
        f"{', '.join(f'{t:.2f}' for t in v)} |" for k, v in times.items()
    ] + [
        "",
        f"Limit (the slower of `curl -o` and `dd … conv=fsync`): {limit:.2f} s ({limiter}). "
        f"**rushes download / limit: {ratio:.2f}x throughput** (goal: at least 0.90x).",
        "<!-- download-disk:end -->",
    ]
    block = "\n".join(lines)
    print(block)
    if smoke:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    start = text.find("<!-- download-disk:start")
    end = text.find("<!-- download-disk:end -->")
    if start >= 0 and end >= 0:
        text = text[:start] + block + text[end + len("<!-- download-disk:end -->"):]
    else:
        text += "\n### Durable downloads to a real disk (`bench/download.sh --disk`)\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def disk_engine_main(args):
    smoke = "--smoke" in args
    rest = [a for a in args if not a.startswith("--")]
    out = rest[0] if rest else os.path.join(ROOT, "downloads-bench-disk")
    size_mib = 64 if smoke else int(os.environ.get("SIZE_MIB", "1024"))
    runs = 1 if smoke else int(os.environ.get("RUNS", "3"))
    global OUT
    OUT = out
    for tool in ("nginx", "curl", TIME, "dd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install nginx-light curl time)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "rushes"], cwd=ROOT, check=True)
    os.makedirs(os.path.join(WORK, "www"), exist_ok=True)
    names = [f"engine-{i}-{size_mib}m.bin" for i in range(3)]
    for name in names:
        make_file(os.path.join(WORK, "www", name), size_mib << 20)
    os.makedirs(out, exist_ok=True)
    out_fs = subprocess.run(["df", "--output=fstype,source", out], capture_output=True,
                            text=True).stdout.split()[-2:]
    load = os.getloadavg()
    port = free_port()
    nginx = start_nginx(port)
    times = {"3 x curl -o": [], "dd conv=fsync": [], "rushes engine": []}
    total = 3 * size_mib
    try:
        def settle():
            clean_out()
            subprocess.run(["sync"], check=True)

        settle()
        curl_concurrent(port, names)  # warms the page cache of the sources
        for run in range(runs):
            settle()
            times["3 x curl -o"].append(curl_concurrent(port, names)[2])
            settle()
            times["dd conv=fsync"].append(timed(["dd", "if=/dev/zero", f"of={os.path.join(OUT, 'dd.bin')}",
                                                 "bs=1M", f"count={total}", "conv=fsync"])[0])
            settle()
            times["rushes engine"].append(engine_concurrent(port, names)[2])
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  file=sys.stderr)
        settle()
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(os.path.join(WORK, "serve"), ignore_errors=True)
        for name in names:
            try:
                os.remove(os.path.join(WORK, "www", name))
            except OSError:
                pass
    end_load = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    limit = max(med["3 x curl -o"], med["dd conv=fsync"])
    limiter = "3 x curl -o" if med["3 x curl -o"] >= med["dd conv=fsync"] else "dd conv=fsync"
    ratio = limit / med["rushes engine"]
    lines = [
        "<!-- download-engine-disk:start (written by bench/download.sh --disk --engine) -->",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}; 3 x {size_mib} MiB from nginx "
        f"on loopback (3 hosts) into a folder on a real disk ({out_fs[0]} on {out_fs[1]}), {runs} interleaved runs, "
        f"`sync` between runs; load average {load[0]:.1f} at start, {end_load[0]:.1f} at the end. "
        f"Command: `bash bench/download.sh --disk --engine`.",
        "",
        f"| {total} MiB into a real disk | median | all runs |",
        "|---|---|---|",
    ] + [
        f"| {k} | {med[k]:.2f} s ({mib_s(total << 20, med[k]):.0f} MiB/s) | "
        f"{', '.join(f'{t:.2f}' for t in v)} |" for k, v in times.items()
    ] + [
        "",
        f"Limit (the slower of 3 concurrent `curl -o` and `dd … conv=fsync` of {total} MiB): {limit:.2f} s ({limiter}). "
        f"**rushes engine (3 concurrent deliveries, SHA-256, fsync before the rename) / limit: {ratio:.2f}x throughput** "
        f"(goal: within 15 %, at least 0.85x).",
        "<!-- download-engine-disk:end -->",
    ]
    block = "\n".join(lines)
    print(block)
    if smoke:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        text = f.read()
    start = text.find("<!-- download-engine-disk:start")
    end = text.find("<!-- download-engine-disk:end -->")
    if start >= 0 and end >= 0:
        text = text[:start] + block + text[end + len("<!-- download-engine-disk:end -->"):]
    else:
        text += ("\n### Three concurrent downloads to a real disk (`bench/download.sh --disk --engine`)\n\n"
                 + block + "\n")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    if "--disk" in sys.argv[1:] and "--engine" in sys.argv[1:]:
        disk_engine_main([a for a in sys.argv[1:] if a not in ("--disk", "--engine")])
    elif "--disk" in sys.argv[1:]:
        disk_main([a for a in sys.argv[1:] if a != "--disk"])
    else:
        main()
