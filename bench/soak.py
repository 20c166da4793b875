#!/usr/bin/env python3
"""Soak run for bench/soak.sh (issue 28, item 5): one release rushes under an operator's load
for a set time, sampled every 30 s, slopes after warm-up written to BENCHMARKS.md.

The load, all on loopback and served from this process:
  - a feed that grows: 2,000 records at the start, +50 every 30 s (both record formats, old
    Dropbox links listed as `available`, manual links, a few invalid items), and among them
    real downloads (10 at the start, 2 more every 30 s) from a local file server;
  - a small fake Frame.io v4 (comments, files, metadata) with 20 tracked uploads, and signed
    `comment.created` webhooks at about 20 a second (a new comment each, added to the fake
    before its webhook is sent: the processor lists the file's comments);
  - 5 live pages (`/api/events`, reconnecting every minute) and the dashboard fetched every 2 s.

Every 30 s: RSS, SQLite's heap (`rushes_sqlite_memory_bytes`), fds, threads (from /proc), the data folder, app.log, the WAL, `/healthz`
latency, the webhook p99 of the interval, pending events (from /metrics); printed and appended
to soak.csv. Signing and bookkeeping happen outside the timed spans.

Usage: soak.py --bin target/release/rushes --minutes 120 --dir DIR --benchmarks BENCHMARKS.md
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

SECRET = "whsec-soak"
ACCOUNT = "acc-soak"
WORKSPACE = "ws-soak"
TOKEN = "soak-static-token"
UPLOADS = 20
WEBHOOKS_PER_S = 20
SAMPLE_EVERY = 30
FEED_START, FEED_STEP = 2000, 50
DOWNLOADS_START, DOWNLOADS_STEP = 10, 2
FILE_RATE = 4 * 1024 * 1024  # bytes/s per connection from the file server
KEEP_COMMENTS = 40  # per file in the fake (older ones leave it, as if resolved)
FEED_WINDOW = [None]  # --feed-window: the feed lists only its newest N records (None: all)
TEXTS = [
    "Can we make the logo bigger in the last shot?",
    "Retouche sur le plan 2 svp",
    "Looks great, approved!",
    "C'est validé pour nous, merci",
    "Please fix the color on the interview, too warm",
    "Le son est trop fort à 0:42",
    "Nice work on the titles",
    "On garde la version 2",
]
stop = threading.Event()


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- the feed and its files

def file_bytes(n):
    """The deterministic body of download number n (1 to 3 MiB)."""
    size = (1 + n % 3) * 1024 * 1024 - 7 * n
    return random.Random(n).randbytes(size)


class World:
    """What the fake servers serve and what the driver expects back."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.rng = random.Random(28)
        self.downloads = {}  # name -> sha256
        self.next_download = 0
        self.comments = {f"file-{i}": [] for i in range(UPLOADS)}
        self.comment_files = {}
        self.comment_n = 0
        self.grow(FEED_START, DOWNLOADS_START)

    def grow(self, records, downloads):
        now = datetime.datetime.now(datetime.timezone.utc)
        rng = self.rng
        new = []
        for _ in range(downloads):
            n = self.next_download
            self.next_download += 1
            name = f"soak-{n:05d}.mov"
            self.downloads[name] = hashlib.sha256(file_bytes(n)).hexdigest()
            new.append({"source_url": f"{FILES_BASE}/files/{n}", "provider": "dropbox",
                        "created_at": now.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                        "original_filename": name})
        for _ in range(records - downloads):
            k = len(self.records) + len(new)
            old = now - datetime.timedelta(days=10 + rng.randint(0, 390), seconds=rng.randint(0, 86400))
            token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
            roll = rng.random()
            if roll < 0.03:
                new.append({"url": "not a link", "timestamp": "yesterday"})
            elif roll < 0.10:
                new.append({"url": f"https://fromsmash.com/{token}", "timestamp": old.strftime("%Y-%m-%d %H:%M:%S"),
                            "source": "fromsmash"})
            elif roll < 0.30:
                new.append({"url": f"https://www.dropbox.com/scl/fi/{token}/clip-{k}.mov?rlkey={token[:8]}&dl=0",
                            "timestamp": old.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "source": "dropbox"})
            else:
                new.append({"source_url": f"https://www.dropbox.com/scl/fo/{token}/x?rlkey={token[:8]}&dl=0",
                            "r2_url": f"https://r2.example.com/{token}/clip-{k}.mov" if roll < 0.6 else None,
                            "provider": "dropbox", "created_at": old.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                            "original_filename": f"clip-{k}.mov"})
        with self.lock:
            self.records.extend(new)
            if FEED_WINDOW[0] is not None:
                del self.records[:-FEED_WINDOW[0]]
            self.feed_body = json.dumps(self.records).encode()

    def add_comment(self, file_id):
        with self.lock:
            self.comment_n += 1
            cid = f"c-{self.comment_n}"
            at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            comment = {"id": cid, "file_id": file_id, "text": self.rng.choice(TEXTS), "timestamp": 12,
                       "created_at": at, "updated_at": at, "completed_at": None,
                       "owner": {"id": "u1", "name": "Claire (client)"}}
            kept = self.comments[file_id]
            kept.append(comment)
            if len(kept) > KEEP_COMMENTS:
                gone = kept.pop(0)
                self.comment_files.pop(gone["id"], None)
            self.comment_files[cid] = file_id
            return cid


FILES_BASE = ""
WORLD = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        parts = path.strip("/").split("/")
        try:
            if path == "/feed":
                with WORLD.lock:
                    body = WORLD.feed_body
                return self.answer(200, body)
            if parts[0] == "files" and len(parts) == 2:
                return self.serve_file(int(parts[1]))
            if parts[:2] == ["v4", "accounts"] and len(parts) >= 5:
                return self.frameio(parts[3:])
        except (ValueError, KeyError):
            pass
        self.answer(404, b'{"errors":[{"detail":"Not Found"}]}')

    def serve_file(self, n):
        body = file_bytes(n)
        start, status, headers = 0, 200, [("ETag", f'"soak-{n}"'), ("Accept-Ranges", "bytes")]
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first or 0)
            end = int(last) + 1 if last else len(body)
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{len(body)}"))
            body, status = body[start:end], 206
        self.send_response(status)
        self.send_header("Content-Type", "video/quicktime")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        chunk = 64 * 1024
        for i in range(0, len(body), chunk):
            self.wfile.write(body[i:i + chunk])
            time.sleep(chunk / FILE_RATE)

    def frameio(self, rest):
        # rest: files/{f}[/comments|/metadata], comments/{c} or workspaces/{w}/webhooks
        if rest[0] == "workspaces" and rest[-1] == "webhooks":
            return self.answer(200, b'{"data":[],"links":{"next":null}}')
        if rest[0] == "comments" and len(rest) == 2:
            with WORLD.lock:
                f = WORLD.comment_files.get(rest[1])
                found = next((c for c in WORLD.comments.get(f, []) if c["id"] == rest[1]), None)
            if found is None:
                return self.answer(404, b'{"errors":[{"detail":"Not Found"}]}')
            return self.answer(200, json.dumps({"data": found}).encode())
        if rest[0] == "files" and len(rest) >= 2 and rest[1] in WORLD.comments:
            f = rest[1]
            metadata = [{"field_definition_id": "fd-status", "field_definition_name": "Status",
                         "field_type": "select", "value": []}]
            if len(rest) == 2:
                data = {"id": f, "name": f"{f}.mov", "status": "transcoded", "type": "file",
                        "metadata": metadata}
                return self.answer(200, json.dumps({"data": data}).encode())
            if rest[2] == "metadata":
                return self.answer(200, json.dumps({"data": {"file_id": f, "metadata": metadata}}).encode())
            if rest[2] == "comments":
                with WORLD.lock:
                    listing = list(WORLD.comments[f])
                LISTINGS[0] += 1
                return self.answer(200, json.dumps({"data": listing, "links": {"next": None}}).encode())
        self.answer(404, b'{"errors":[{"detail":"Not Found"}]}')


LISTINGS = [0]
CHECKED = set()


def serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- clients of rushes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Rushes:
    def __init__(self, port):
        self.port = port

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, timeout=10):
        c = self.conn(timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_json(self, path, value):
        c = self.conn()
        try:
            c.request("POST", path, body=json.dumps(value), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


class Latencies:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = []
        self.sent = self.ok = self.refused = 0

    def take(self):
        with self.lock:
            values, self.values = self.values, []
        return values


def webhook_sender(rushes, lat, index, senders):
    """One of `senders` threads; together about WEBHOOKS_PER_S a second."""
    period = senders / WEBHOOKS_PER_S
    conn = None
    next_at = time.monotonic()
    n = index
    while not stop.is_set():
        file_id = f"file-{n % UPLOADS}"
        n += senders
        cid = WORLD.add_comment(file_id)
        body = json.dumps({"type": "comment.created", "resource": {"id": cid, "type": "comment"},
                           "account": {"id": ACCOUNT}, "workspace": {"id": WORKSPACE},
                           "project": {"id": "proj-1"}, "user": {"id": "u1"}}).encode()
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Frameio-Request-Timestamp": ts,
                   "X-Frameio-Signature": sig}
        status = None
        started = time.monotonic()
        try:
            if conn is None:
                conn = rushes.conn(timeout=10)
            conn.request("POST", "/webhooks/frameio", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException):
            conn = None
        took = time.monotonic() - started
        with lat.lock:
            lat.sent += 1
            lat.values.append(took)
            if status == 200:
                lat.ok += 1
            else:
                lat.refused += 1
        next_at += period
        pause = next_at - time.monotonic()
        if pause > 0:
            stop.wait(pause)
        else:
            next_at = time.monotonic()


def live_page(rushes):
    """An open `/api/events` stream, reconnected every minute."""
    while not stop.is_set():
        try:
            c = rushes.conn(timeout=30)
            c.request("GET", "/api/events")
            r = c.getresponse()
            until = time.monotonic() + 60
            while time.monotonic() < until and not stop.is_set():
                if not r.fp.readline():
                    break
            c.close()
        except (OSError, http.client.HTTPException):
            stop.wait(1)


def dashboard(rushes, timings):
    while not stop.wait(2):
        started = time.monotonic()
        try:
            status, _ = rushes.get("/", timeout=30)
            if status == 200:
                timings.append(time.monotonic() - started)
        except (OSError, http.client.HTTPException):
            pass


# ---------------------------------------------------------------- sampling

def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def mib_or_nan(value):
    return float("nan") if value is None else value / 2**20


def metric(page, name):
    for line in page.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            try:
                return float(line.rsplit(" ", 1)[1])
            except ValueError:
                return None
    return None


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


COLUMNS = ["minute", "rss_mib", "sqlite_mib", "heap_mib", "heap_resident_mib", "fds", "threads", "data_mib", "log_mib", "wal_mib", "healthz_ms",
           "webhook_p99_ms", "webhooks", "pending_events", "downloads_done", "page_p50_ms"]


def sample(proc, rushes, dirs, lat, pages, started):
    st = proc_status(proc.pid)
    t0 = time.monotonic()
    try:
        code, _ = rushes.get("/healthz", timeout=10)
    except (OSError, http.client.HTTPException):
        code = 0
    healthz_ms = (time.monotonic() - t0) * 1000 if code == 200 else float("nan")
    try:
        _, page = rushes.get("/metrics", timeout=10)
        page = page.decode()
    except (OSError, http.client.HTTPException):
        page = ""
    values = lat.take()
    page_times, pages[:] = list(pages), []
    wal = os.path.join(dirs["data"], "rushes.db-wal")
    logs = dirs["logs"]
    return {
        "minute": (time.monotonic() - started) / 60,
        "rss_mib": int(st["VmRSS"].split()[0]) / 1024,
        "sqlite_mib": mib_or_nan(metric(page, "rushes_sqlite_memory_bytes")),
        "heap_mib": mib_or_nan(metric(page, 'rushes_heap_bytes{kind="allocated"}')),
        "heap_resident_mib": mib_or_nan(metric(page, 'rushes_heap_bytes{kind="resident"}')),
        "fds": len(os.listdir(f"/proc/{proc.pid}/fd")),
        "threads": int(st["Threads"]),
        "data_mib": folder_bytes(dirs["data"]) / 2**20,
        "log_mib": sum(os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs)
                       if f.startswith("app.log")) / 2**20 if os.path.isdir(logs) else 0.0,
        "wal_mib": (os.path.getsize(wal) if os.path.exists(wal) else 0) / 2**20,
        "healthz_ms": healthz_ms,
        "webhook_p99_ms": percentile(values, 99) * 1000,
        "webhooks": len(values),
        "pending_events": metric(page, "rushes_frameio_events_pending"),
        "downloads_done": metric(page, 'rushes_deliveries{state="done"}'),
        "page_p50_ms": percentile(page_times, 50) * 1000,
    }


def slope_per_hour(rows, key):
    pts = [(r["minute"] / 60, r[key]) for r in rows if r[key] is not None and r[key] == r[key]]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else float("nan")


# ---------------------------------------------------------------- the run

def start_rushes(binary, root, port, fake_base, feed_url):
    dirs = {k: os.path.join(root, k) for k in ("data", "logs", "downloads")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUSHES_", "FRAMEIO_", "WEBHOOK_"))}
    env.update({
        "RUSHES_DATA_DIR": dirs["data"], "RUSHES_LOG_DIR": dirs["logs"],
        "LOCAL_DOWNLOADS_DIR": dirs["downloads"], "RUSHES_BIND": f"127.0.0.1:{port}",
        "WEBHOOK_JSON_URL": feed_url, "WEBHOOK_MONITOR_INTERVAL": "15", "WEBHOOK_CACHE_TTL": "0",
        "FRAMEIO_API_BASE": fake_base, "FRAMEIO_TOKEN": TOKEN, "FRAMEIO_ACCOUNT_ID": ACCOUNT,
        "FRAMEIO_WORKSPACE_ID": WORKSPACE, "FRAMEIO_WEBHOOK_SECRET": SECRET,
        "FRAMEIO_POLL_INTERVAL": "300", "RUST_LOG": env.get("RUST_LOG", "info"),
    })
    out = open(os.path.join(root, "rushes.out"), "ab")
    proc = subprocess.Popen([os.path.abspath(binary), "serve"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, dirs


def wait_healthy(rushes, proc, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"rushes exited with {proc.returncode}: see rushes.out")
        try:
            if rushes.get("/healthz", timeout=2)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    sys.exit("rushes did not answer /healthz within 60 s")


def check_downloads(rushes, dirs):
    """Compares every finished download's SHA-256 with the file served; removes checked files
    (the disk is not what is measured)."""
    ok = bad = 0
    try:
        _, body = rushes.get("/api/deliveries?state=done&limit=500", timeout=30)
        listed = json.loads(body).get("deliveries", [])
    except (OSError, http.client.HTTPException, ValueError):
        return ok, bad
    for d in listed:
        name = d.get("original_filename")
        expected = WORLD.downloads.get(name)
        if expected is None or name in CHECKED:
            continue
        CHECKED.add(name)
        if d.get("sha256") == expected:
            ok += 1
        else:
            bad += 1
            log(f"WRONG SHA-256: {name}: {d.get('sha256')} != {expected}")
        try:
            os.remove(os.path.join(dirs["downloads"], name))
        except OSError:
            pass
    return ok, bad


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


def write_benchmarks(path, text):
    start, end = "<!-- soak:start -->", "<!-- soak:end -->"
    section = f"{start}\n{text.rstrip()}\n{end}\n"
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = ""
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        current = before + section + after
    else:
        current = current.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(current)


def main():
    global FILES_BASE, WORLD
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=120)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--benchmarks", required=True)
    ap.add_argument("--commit", default="?")
    ap.add_argument("--feed-window", type=int, default=None,
                    help="the feed lists only its newest N records (older ones stay in the store): "
                         "a feed of constant size, to tell growth with the data from growth with time")
    args = ap.parse_args()
    FEED_WINDOW[0] = args.feed_window
    os.makedirs(args.dir, exist_ok=True)
    root = os.path.join(args.dir, "run")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)

    # The servers start first: their address goes into the feed's records.
    server = serve()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    FILES_BASE = base
    WORLD = World()
    port = free_port()
    proc, dirs = start_rushes(args.bin, root, port, base, f"{base}/feed")
    rushes = Rushes(port)

    def finish(*_):
        stop.set()
    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    try:
        wait_healthy(rushes, proc)
        for i in range(UPLOADS):
            status, body = rushes.post_json("/api/uploads", {"file_id": f"file-{i}"})
            if status not in (200, 201):
                sys.exit(f"tracking file-{i}: {status} {body[:200]!r}")
        lat = Latencies()
        pages = []
        threads = [threading.Thread(target=webhook_sender, args=(rushes, lat, i, 4), daemon=True) for i in range(4)]
        threads += [threading.Thread(target=live_page, args=(rushes,), daemon=True) for _ in range(5)]
        threads.append(threading.Thread(target=dashboard, args=(rushes, pages), daemon=True))
        for t in threads:
            t.start()
        started = time.monotonic()
        end_at = started + args.minutes * 60
        csv_path = os.path.join(args.dir, "soak.csv")
        with open(csv_path, "w") as f:
            f.write(",".join(COLUMNS) + "\n")
        log(f"soak: {args.minutes:g} min, rushes pid {proc.pid} on 127.0.0.1:{port}, CSV {csv_path}")
        log(" ".join(f"{c:>14}" for c in COLUMNS))
        rows, good, wrong = [], 0, 0
        next_sample = started + SAMPLE_EVERY
        while not stop.is_set() and time.monotonic() < end_at:
            stop.wait(max(0.0, min(next_sample, end_at) - time.monotonic()))
            if proc.poll() is not None:
                log(f"rushes exited with {proc.returncode}")
                break
            if time.monotonic() >= next_sample:
                next_sample += SAMPLE_EVERY
                WORLD.grow(FEED_STEP, DOWNLOADS_STEP)
                ok, bad = check_downloads(rushes, dirs)
                good, wrong = good + ok, wrong + bad
                row = sample(proc, rushes, dirs, lat, pages, started)
                rows.append(row)
                with open(csv_path, "a") as f:
                    f.write(",".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS) + "\n")
                log(" ".join(f"{row[c]:>14.2f}" if isinstance(row[c], float) else f"{str(row[c]):>14}" for c in COLUMNS))
        stop.set()
        ok, bad = check_downloads(rushes, dirs)
        good, wrong = good + ok, wrong + bad
        report(args, rows, lat, good, wrong)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()


def quarter_hours(rows):
    """(minutes, RSS range, heap range, SQLite range) for each quarter hour of the run."""
    def span(values):
        values = [v for v in values if v == v]
        return f"{min(values):.1f}-{max(values):.1f}" if values else "n/a"
    out = []
    for q in range(int(rows[-1]["minute"] // 15) + 1):
        part = [r for r in rows if q * 15 <= r["minute"] < (q + 1) * 15]
        if part:
            out.append((f"{q * 15}-{(q + 1) * 15}", span(r["rss_mib"] for r in part),
                        span(r["heap_mib"] for r in part), span(r["sqlite_mib"] for r in part)))
    return out


def report(args, rows, lat, good, wrong):
    if not rows:
        sys.exit("no sample taken")
    minutes = rows[-1]["minute"]
    warm = 30 if minutes >= 90 else minutes / 3
    after = [r for r in rows if r["minute"] >= warm]
    keys = [("rss_mib", "RSS", "MiB/hour"), ("sqlite_mib", "SQLite heap (of RSS)", "MiB/hour"),
            ("heap_mib", "heap in use (allocator)", "MiB/hour"), ("heap_resident_mib", "heap pages kept (allocator)", "MiB/hour"),
            ("fds", "open files", "fds/hour"),
            ("threads", "threads", "threads/hour"), ("data_mib", "data folder", "MiB/hour"),
            ("log_mib", "app.log", "MiB/hour"), ("wal_mib", "WAL", "MiB/hour"),
            ("healthz_ms", "/healthz latency", "ms/hour"), ("webhook_p99_ms", "webhook p99", "ms/hour"),
            ("pending_events", "pending events", "events/hour"), ("page_p50_ms", "dashboard page p50", "ms/hour")]
    first, last = after[0], after[-1]
    lines = [
        f"## Soak (`bash bench/soak.sh`, {datetime.date.today().isoformat()})",
        "",
        f"{minutes:.0f} minutes of the issue-28 load on one release rushes (SQLite): a feed of "
        + (f"{FEED_START:,} records growing by {FEED_STEP} every 30 s, " if FEED_WINDOW[0] is None else
           f"constant size: its newest {FEED_WINDOW[0]:,} records, {FEED_STEP} new ones every 30 s, older ones leaving it "
           "(they stay in the store), ")
        + f"{DOWNLOADS_START} + {DOWNLOADS_STEP} "
        f"real downloads every 30 s from a local file server, {UPLOADS} tracked uploads receiving "
        f"{WEBHOOKS_PER_S} signed comment webhooks a second, 5 live pages, the dashboard every 2 s. "
        f"Machine: {machine()}, shared with other builds. Commit {args.commit}.",
        "",
        f"Slopes after the warm-up (samples from minute {warm:.0f} on, least squares):",
        "",
        "| what | at warm-up end | at the end | slope |",
        "|---|---|---|---|",
    ]
    for key, name, unit in keys:
        lines.append(f"| {name} | {first[key]:.2f} | {last[key]:.2f} | {slope_per_hour(after, key):+.2f} {unit} |")
    lines += ["", "RSS and the allocator's heap in use, lowest-highest per quarter hour (a sample is one moment: a "
              "poll's or a download's buffers may be alive in it, the range shows what stays):", "",
              "| minutes | RSS (MiB) | heap in use (MiB) | SQLite heap (MiB) |", "|---|---|---|---|"]
    for label, rss, heap, sqlite in quarter_hours(rows):
        lines.append(f"| {label} | {rss} | {heap} | {sqlite} |")
    p99s = sorted(r["webhook_p99_ms"] for r in rows if r["webhook_p99_ms"] == r["webhook_p99_ms"])
    lines += [
        "",
        f"Webhooks: {lat.sent:,} sent, {lat.ok:,} acknowledged, {lat.refused:,} refused; worst 30-s p99 "
        f"{p99s[-1] if p99s else float('nan'):.1f} ms. Comment listings asked of the fake Frame.io: "
        f"{LISTINGS[0]:,}. Downloads: {good} done with the right SHA-256, {wrong} wrong. "
        f"Every sample: `soak.csv` in the run folder.",
    ]
    text = "\n".join(lines)
    log("\n" + text)
    write_benchmarks(args.benchmarks, text)
    log(f"\nwritten between the soak markers of {args.benchmarks}")


if __name__ == "__main__":
    main()
