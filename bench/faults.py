"""Fault suite (not a test, not in CI): runs the release `rushes serve` against hostile or broken
surroundings and records, for each fault, what rushes did and whether anything was lost.
Writes FAULTS.md. Run through bench/faults.sh."""

import hashlib
import hmac
import http.client
import http.server
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "rushes")
RESULTS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, check, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- test servers

class Feed:
    """A feed server whose behaviour can be switched: ok, slow, garbage, huge, error, raw."""

    def __init__(self):
        self.mode = "ok"
        self.body = b"[]"
        feed = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                mode = feed.mode
                try:
                    if mode == "slow":
                        time.sleep(60)
                    if mode == "error":
                        body = json.dumps({"error": "E" * (20 << 20)}).encode()
                        self.send_response(500)
                    elif mode == "garbage":
                        body = os.urandom(200_000)
                        self.send_response(200)
                    elif mode == "huge":
                        body = b"[" + b'"x",' * (50 << 18) + b'"x"]'
                        self.send_response(200)
                    else:
                        body = feed.body
                        self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/feed.json?token=s3cret-feed"

    def records(self, items):
        self.body = json.dumps(items).encode()


class Files:
    """A file server with ETag + Range; can drop connections, ignore If-Range, swap versions,
    throttle."""

    def __init__(self):
        self.files = {}
        files = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                f = files.files.get(self.path.split("?")[0])
                if f is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, etag = f["body"], f["etag"]
                start = 0
                rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                if rng and (f.get("ignore_if_range") or if_range in (None, etag)):
                    start = int(rng.split("=")[1].rstrip("-"))
                part = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                drop = None
                if f.get("drops", 0) > 0:
                    f["drops"] -= 1
                    drop = f.get("drop_after", 1 << 20)
                    if f.get("next"):
                        files.put(self.path.split("?")[0], f.pop("next"), keep=f)
                sent, step, rate = 0, 64 << 10, f.get("rate", 0)
                try:
                    while sent < len(part):
                        if drop is not None and sent >= drop:
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        chunk = part[sent:sent + step]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if rate:
                            time.sleep(len(chunk) / rate)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def put(self, path, body, keep=None, **opts):
        entry = dict(keep or {})
        entry.update(opts)
        entry["body"] = body
        entry["etag"] = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        self.files[path] = entry
        return f"{self.base}{path}?X-Amz-Signature=s3cret-sig"


class SwissTransfer:
    """A fake SwissTransfer API (the routes its open-source client uses): GET /api/links/<uuid>
    answers the container (files with UUID, fileName, fileSizeInBytes, path), GET
    /api/download/<uuid>/<file> serves a file. `downloadHost` is the host the API was asked on."""

    def __init__(self):
        self.transfers = {}
        self.asked = {}
        st = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status, body, kind="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:2] == ["api", "links"] and len(parts) == 3 and parts[2] in st.transfers:
                    t = st.transfers[parts[2]]
                    files = [{"UUID": fid, "fileName": name, "fileSizeInBytes": len(body), "path": path}
                             for fid, name, path, body in t["files"]]
                    data = {"linkUUID": parts[2], "containerUUID": "c-" + parts[2],
                            "downloadHost": self.headers.get("Host"), "downloadCounterCredit": 250,
                            "container": {"needPassword": 0, "message": t["message"], "files": files}}
                    return self.answer(200, json.dumps({"data": data}).encode())
                if parts[:2] == ["api", "download"] and len(parts) == 4 and parts[2] in st.transfers:
                    for fid, _, _, body in st.transfers[parts[2]]["files"]:
                        if fid == parts[3]:
                            st.asked[fid] = st.asked.get(fid, 0) + 1
                            return self.answer(200, body, "application/octet-stream")
                self.answer(404, b'{"data":{"type":"not_found"}}')

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api = f"http://127.0.0.1:{self.server.server_port}/api"

    def add(self, uuid, message, files):
        """files: (file UUID, name, path, bytes)"""
        self.transfers[uuid] = {"message": message, "files": files}
        return f"https://www.swisstransfer.com/d/{uuid}"


def record(url, name):
    return {"source_url": url, "provider": "dropbox",
            "created_at": "2026-01-08T20:19:38+00:00", "original_filename": name}


# ---------------------------------------------------------------- rushes

class Rushes:
    def __init__(self, root, feed_url, env=None, start=True):
        self.root = root
        self.port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
            "WEBHOOK_JSON_URL": feed_url, "RUSHES_BIND": f"127.0.0.1:{self.port}",
            "RUSHES_DATA_DIR": os.path.join(root, "data"),
            "LOCAL_DOWNLOADS_DIR": os.path.join(root, "downloads"),
            "RUSHES_LOG_DIR": os.path.join(root, "logs"), "WEBHOOK_CACHE_TTL": "0",
            "WEBHOOK_MONITOR_INTERVAL": "3600", "RUST_LOG": "info",
            # The staged records carry fixed dates: no age limit (as the tests do).
            "DOWNLOAD_MAX_AGE": "0",
        }
        self.env.update(env or {})
        self.proc = None
        if start:
            self.start()

    def start(self):
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, cwd=self.root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait("rushes /healthz", lambda: self.status("/healthz") == 200)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path, method="GET", headers=None, timeout=120):
        req = urllib.request.Request(self.url(path), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return None, b""

    def status(self, path, **kw):
        return self.request(path, **kw)[0]

    def json(self, path, **kw):
        code, body = self.request(path, **kw)
        try:
            return json.loads(body)
        except ValueError:
            return None

    def deliveries(self):
        return (self.json("/api/deliveries?limit=1000&show_signed=1") or {}).get("deliveries", [])

    def rss_kib(self):
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith("VmHWM"):
                    return int(line.split()[1])
        except OSError:
            return 0
        return 0

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


def fault(name):
    def wrap(fn):
        def run():
            root = tempfile.mkdtemp(prefix="rushes-fault-")
            started = time.time()
            try:
                did, kept, ok = fn(root)
            except Exception as e:  # a fault the suite could not stage is reported, not hidden
                did, kept, ok = f"suite error: {e}", "?", False
            finally:
                shutil.rmtree(root, ignore_errors=True)
            RESULTS.append((name, did, kept, "held" if ok else "**did not hold**",
                            time.time() - started))
            print(f"[{'ok' if ok else 'FAIL'}] {name}: {did} / {kept}", file=sys.stderr)
        run.__name__ = fn.__name__
        return run
    return wrap


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- faults

def base_feed(feed, files, n=3):
    items = []
    for i in range(n):
        url = files.put(f"/f{i}.bin", os.urandom(200_000))
        items.append(record(url, f"f{i}.bin"))
    feed.records(items)


def settled(r, n, timeout=60):
    return wait(f"{n} settled deliveries", lambda: (lambda d: d if len(d) == n and all(
        x["state"] in ("done", "failed") for x in d) else None)(r.deliveries()), timeout)


@fault("feed down (connection refused)")
def feed_down(root):
    r = Rushes(root, f"http://127.0.0.1:{free_port()}/feed.json", {"WEBHOOK_TIMEOUT": "2"})
    st = wait("a failed poll", lambda: (lambda s: s if s and s["webhook"]["error"] else None)(
        r.json("/api/csv_monitor_status")))
    up = r.status("/healthz") == 200
    r.stop()
    return (f"poll failed with \"{st['webhook']['error'][:80]}\"; service up: {up}",
            "nothing to lose", up)


@fault("feed slow (never answers within WEBHOOK_TIMEOUT=2)")
def feed_slow(root):
    feed, files = Feed(), Files()
    base_feed(feed, files)
    r = Rushes(root, feed.url, {"WEBHOOK_TIMEOUT": "2"})
    settled(r, 3)
    feed.mode = "slow"
    t = time.time()
    code, body = r.request("/api/feed/refresh", method="POST")
    took = time.time() - t
    kept = len(r.deliveries())
    r.stop()
    return (f"Refresh now answered {code} after {took:.1f} s: {body[:90].decode(errors='replace')}",
            f"{kept}/3 deliveries kept", code == 502 and kept == 3 and took < 15)


@fault("feed garbage (200 KB of random bytes)")
def feed_garbage(root):
    feed, files = Feed(), Files()
    base_feed(feed, files)
    r = Rushes(root, feed.url)
    settled(r, 3)
    feed.mode = "garbage"
    code, body = r.request("/api/feed/refresh", method="POST")
    kept = len(r.deliveries())
    r.stop()
    return (f"{code}: {body[:100].decode(errors='replace')}", f"{kept}/3 deliveries kept",
            code == 502 and kept == 3)


@fault("feed of 50 MB")
def feed_huge(root):
    feed, files = Feed(), Files()
    base_feed(feed, files)
    r = Rushes(root, feed.url)
    settled(r, 3)
    feed.mode = "huge"
    code, body = r.request("/api/feed/refresh", method="POST")
    rss = r.rss_kib()
    kept = len(r.deliveries())
    r.stop()
    return (f"{code}: {body[:100].decode(errors='replace')}; peak RSS {rss // 1024} MiB",
            f"{kept}/3 deliveries kept", code == 502 and kept == 3 and rss < 200 * 1024)


@fault("feed error message of 20 MB, 5 polls (hole 6)")
def feed_error(root):
    feed, files = Feed(), Files()
    base_feed(feed, files)
    r = Rushes(root, feed.url)
    settled(r, 3)
    db = os.path.join(root, "data", "rushes.db")
    size = lambda: sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
    log = os.path.join(root, "logs", "app.log")
    db0, log0 = size(), os.path.getsize(log)
    feed.mode = "error"
    for _ in range(5):
        r.request("/api/feed/refresh", method="POST")
    st = r.json("/api/csv_monitor_status")
    err = st["webhook"]["error"] or ""
    grew_db, grew_log = size() - db0, os.path.getsize(log) - log0
    r.stop()
    ok = len(err) < 2048 and grew_db < 1 << 20 and grew_log < 1 << 20
    return (f"stored error {len(err)} bytes (\"…{err[-24:]}\"); database +{grew_db // 1024} KiB, "
            f"log +{grew_log // 1024} KiB", "3/3 deliveries kept", ok)


@fault("one feed item with bytes that are not UTF-8 (hole 9)")
def feed_utf8(root):
    feed, files = Feed(), Files()
    url = files.put("/ok.bin", b"x" * 1000)
    body = json.dumps([record(url, "ok.bin"), record(url + "&b", "BAD")]).encode()
    feed.body = body.replace(b"BAD", b"B\xff\xfeD")
    r = Rushes(root, feed.url, {"DRY_RUN_DOWNLOADS": "1"})
    d = wait("the valid item", lambda: r.deliveries())
    st = r.json("/api/csv_monitor_status")
    r.stop()
    return (f"{len(d)} delivery recorded, feed error: {st['webhook']['error']}",
            "the valid item kept", len(d) == 1 and not st["webhook"]["error"])


@fault("file server dropping the connection 3 times (every try of the URL)")
def drops(root):
    feed, files = Feed(), Files()
    data = os.urandom(8 << 20)
    feed.records([record(files.put("/drop.bin", data, drops=3, drop_after=2 << 20), "drop.bin")])
    r = Rushes(root, feed.url)
    first = settled(r, 1)[0]
    parts = [n for n in os.listdir(os.path.join(root, "downloads")) if n.endswith(".part")]
    part_bytes = sum(os.path.getsize(os.path.join(root, "downloads", n)) for n in parts)
    r.request(f"/api/deliveries/{first['id']}/retry", method="POST")
    d = wait("the retry to finish", lambda: (lambda x: x[0] if x and x[0]["state"] == "done" else None)(
        r.deliveries()), 60)
    r.stop()
    ok = d["state"] == "done" and d["sha256"] == sha(data)
    return (f"first {first['state']} after its 3 tries ({(first.get('error') or '')[:60]}), .part of "
            f"{part_bytes >> 20} MiB kept; Retry: {d['state']}",
            f"SHA-256 matches after the retry: {d['sha256'] == sha(data)}", ok)


@fault("server ignoring If-Range serves a new version on resume (hole 1)")
def spliced(root):
    feed, files = Feed(), Files()
    a, b = os.urandom(6 << 20), os.urandom(6 << 20)
    url = files.put("/v.bin", a, drops=1, drop_after=2 << 20, ignore_if_range=True, next=b)
    feed.records([record(url, "v.bin")])
    r = Rushes(root, feed.url)
    d = settled(r, 1)[0]
    on_disk = open(os.path.join(root, "downloads", "v.bin"), "rb").read() if d["state"] == "done" else b""
    r.stop()
    ok = d["state"] == "done" and d["sha256"] == sha(b) and on_disk == b
    return (f"{d['state']}: the 206 of version B was refused, started over",
            f"file is whole version B: {on_disk == b}", ok)


@fault("SIGKILL during downloads, then restart")
def kill_downloads(root):
    feed, files = Feed(), Files()
    blobs = [os.urandom(12 << 20) for _ in range(2)]
    feed.records([record(files.put(f"/k{i}.bin", b, rate=6 << 20), f"k{i}.bin")
                  for i, b in enumerate(blobs)])
    r = Rushes(root, feed.url)
    wait("downloads under way", lambda: any((x.get("bytes_done") or 0) > 2 << 20 for x in r.deliveries()))
    r.kill9()
    r.start()
    d = settled(r, 2)
    names = sorted(os.listdir(os.path.join(root, "downloads")))
    r.stop()
    ok = all(x["state"] == "done" for x in d) and sorted(x["sha256"] for x in d) == sorted(
        sha(b) for b in blobs) and names == ["k0.bin", "k1.bin"]
    return (f"resumed after restart: {[x['state'] for x in d]}",
            f"files {names}, hashes match: {ok}", ok)


@fault("disk full (4 MiB tmpfs, 8 MiB file)")
def disk_full(root):
    dl = os.path.join(root, "small")
    os.makedirs(dl)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dl],
                      capture_output=True).returncode != 0:
        return ("not staged: cannot mount a tmpfs here", "-", True)
    try:
        feed, files = Feed(), Files()
        data = os.urandom(8 << 20)
        files.put("/big.bin", data)
        feed.records([record(files.base + "/big.bin", "big.bin")])
        r = Rushes(root, feed.url, {"LOCAL_DOWNLOADS_DIR": dl})
        d = settled(r, 1)[0]
        up = r.status("/healthz") == 200
        r.stop()
        return (f"{d['state']}: {(d.get('error') or '')[:90]}; service up: {up}",
                "the delivery stays retryable", d["state"] == "failed" and up)
    finally:
        subprocess.run(["umount", dl], capture_output=True)


@fault("SIGKILL during a webhook burst (8 senders)")
def kill_webhooks(root):
    feed = Feed()
    secret = "whs3cret-fault"
    r = Rushes(root, feed.url, {"FRAMEIO_WEBHOOK_SECRET": secret})
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def sender(n):
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        i = 0
        while not stop.is_set():
            i += 1
            body = json.dumps({"type": "file.versioned", "resource": {"type": "file", "id": f"f-{n}-{i}"},
                               "account": {"id": "a"}, "workspace": {"id": "w"}}).encode()
            ts = str(int(time.time()))
            sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
            try:
                conn.request("POST", "/webhooks/frameio", body, {
                    "Content-Type": "application/json", "X-Frameio-Request-Timestamp": ts,
                    "X-Frameio-Signature": sig})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with lock:
                        acked.append(f"f-{n}-{i}")
            except OSError:
                return

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)  # the burst runs for a while before the kill: this is the fault being staged
    r.kill9()
    stop.set()
    for t in threads:
        t.join()
    con = sqlite3.connect(os.path.join(root, "data", "rushes.db"))
    stored = {row[0] for row in con.execute("SELECT resource_id FROM frameio_events")}
    con.close()
    lost = [a for a in acked if a not in stored]
    return (f"{len(acked)} events answered 200 before the kill, {len(stored)} rows stored",
            f"answered but lost: {len(lost)}", not lost and acked)


@fault("second instance on the same data folder (hole 2)")
def second_instance(root):
    feed = Feed()
    r = Rushes(root, feed.url)
    env = dict(r.env, RUSHES_BIND=f"127.0.0.1:{free_port()}")
    p = subprocess.run([BIN, "serve"], env=env, cwd=root, capture_output=True, timeout=30)
    up = r.status("/healthz") == 200
    r.stop()
    msg = p.stderr.decode().strip().splitlines()[-1] if p.stderr else ""
    return (f"exit {p.returncode}: {msg[:100]}", f"first instance still up: {up}",
            p.returncode == 2 and "another rushes (pid" in msg and up)


@fault("DNS rebinding: Host: evil.example without a token (hole 3)")
def rebinding(root):
    r = Rushes(root, Feed().url)
    code = r.status("/api/deliveries", headers={"Host": "evil.example", "Origin": "http://evil.example"})
    cancel = r.status("/api/deliveries/1/cancel", method="POST",
                      headers={"Host": "evil.example", "Origin": "http://evil.example"})
    r.stop()
    return (f"GET answered {code}, POST cancel answered {cancel}", "nothing read or changed",
            code == 421 and cancel == 421)


@fault("1,100 connections sending half a header (hole 4)")
def slowloris(root):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    r = Rushes(root, Feed().url)
    socks = []
    for _ in range(1100):
        try:
            s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            break
    t = time.time()
    during = r.status("/healthz", timeout=10)
    took = time.time() - t

    def closed(s):
        s.settimeout(0.01)
        try:
            return s.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True
    t2 = time.time()
    wait("the server to close the slow sockets", lambda: all(closed(s) for s in socks), 40)
    gone = time.time() - t2
    for s in socks:
        s.close()
    r.stop()
    return (f"{len(socks)} sockets held; /healthz answered {during} in {took:.2f} s; all slow sockets "
            f"closed by the server within {gone:.0f} s", "-", during == 200)


@fault("brute force: 300 wrong bearer tokens (hole 5)")
def brute(root):
    r = Rushes(root, Feed().url, {"RUSHES_API_TOKEN": "right-token-0123456789"})
    codes = [r.status("/api/deliveries", headers={"Authorization": f"Bearer guess-{i}"}) for i in range(300)]
    right = r.status("/api/deliveries", headers={"Authorization": "Bearer right-token-0123456789"})
    log = open(os.path.join(root, "logs", "app.log")).read()
    r.stop()
    return (f"{codes.count(401)}x 401 then {codes.count(429)}x 429; the right token while blocked: {right}",
            f"guesses in the log: {'guess-' in log}", codes.count(401) <= 10 and right == 429 and "guess-" not in log)


@fault("database locked by another process (hole 9)")
def db_locked(root):
    r = Rushes(root, Feed().url)
    con = sqlite3.connect(os.path.join(root, "data", "rushes.db"), isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    # A success is trusted for a second: poll until the lock shows.
    code, body = wait("a degraded healthz", lambda: (lambda cb: cb if cb[0] == 503 else None)(
        r.request("/healthz")), 15)
    con.execute("ROLLBACK")
    con.close()
    after = wait("healthz back", lambda: r.status("/healthz") == 200)
    r.stop()
    return (f"/healthz {code} {body[:80].decode(errors='replace')}", f"recovered: {after}", code == 503)


@fault("completion hook with secrets in rushes' environment (hole 7)")
def hook_env(root):
    feed, files = Feed(), Files()
    feed.records([record(files.put("/h.bin", b"x" * 1000), "a\u0000b" + "n" * 5_000_000 + ".mov")])
    r = Rushes(root, feed.url, {"RUSHES_API_TOKEN": "right-token-0123456789",
                                "FRAMEIO_TOKEN": "frameio-s3cret", "ON_DOWNLOAD_COMPLETE": "/usr/bin/env"})
    auth = {"Authorization": "Bearer right-token-0123456789"}
    d = wait("the hook", lambda: (lambda x: x if x and x[0].get("hook_exit_code") is not None else None)(
        (r.json("/api/deliveries", headers=auth) or {}).get("deliveries")))[0]
    one = r.json(f"/api/deliveries/{d['id']}", headers=auth)
    out = one.get("hook_output") or ""
    r.stop()
    leaked = [s for s in ("right-token", "frameio-s3cret", "s3cret-feed") if s in out]
    return (f"hook exit {d['hook_exit_code']}, saw {len(out.splitlines())} variables", f"secrets seen: {leaked}",
            d["hook_exit_code"] == 0 and not leaked)


@fault("two SwissTransfer deliveries named alike + four files named clip.mov (issue 22, 2-3)")
def collision(root):
    feed, st = Feed(), SwissTransfer()
    a, b = os.urandom(300_000), os.urandom(300_000)  # same size, other bytes
    four = [os.urandom(200_000) for _ in range(4)]
    items = [
        {"source_url": st.add("aaaaaaaa-0000-0000-0000-000000000001", "x", [("a-1", "clip.mov", "", a)]),
         "provider": "swisstransfer", "created_at": "2026-01-08T20:19:38+00:00", "original_filename": "Clips"},
        {"source_url": st.add("aaaaaaaa-0000-0000-0000-000000000002", "x", [("b-1", "clip.mov", "", b)]),
         "provider": "swisstransfer", "created_at": "2026-01-08T20:19:38+00:00", "original_filename": "Clips"},
        {"url": st.add("aaaaaaaa-0000-0000-0000-000000000003", "Rushes", [
            (f"c-{i}", "clip.mov", path, body) for i, (path, body) in enumerate(zip(["", "", "sub", "sub/"], four))]),
         "timestamp": "2026-01-08T20:19:38+00:00", "source": "swisstransfer"},
    ]
    feed.records(items)
    r = Rushes(root, feed.url, env={"SWISSTRANSFER_API_BASE": st.api})
    d = settled(r, 3)
    r.stop()
    folders = sorted(x.get("final_path") or "" for x in d)
    def tree(folder):
        out = {}
        for base, _, names in os.walk(folder):
            for n in names:
                if not n.startswith("."):
                    p = os.path.join(base, n)
                    out[os.path.relpath(p, folder)] = sha(open(p, "rb").read())
        return out
    trees = {f: tree(f) for f in folders if f}
    clips = sorted(t.get("clip.mov") for f, t in trees.items() if os.path.basename(f).startswith("Clips"))
    rushes = next((t for f, t in trees.items() if os.path.basename(f) == "Rushes"), {})
    landed = sorted(v for k, v in rushes.items() if k != "SHA256SUMS")
    sums_ok = all(
        sorted(l.split("  ", 1)[0] for l in open(os.path.join(f, "SHA256SUMS")).read().splitlines())
        == sorted(v for k, v in t.items() if k != "SHA256SUMS") for f, t in trees.items())
    ok = (all(x["state"] == "done" for x in d) and len(set(folders)) == 3
          and clips == sorted([sha(a), sha(b)]) and landed == sorted(sha(x) for x in four) and sums_ok
          and all(n == 1 for n in st.asked.values()) and len(st.asked) == 6)
    names = sorted(k for k in rushes if k != "SHA256SUMS")
    return (f"{[x['state'] for x in d]}; folders {[os.path.basename(f) for f in folders]}; the four: {names}",
            f"every file its own bytes: {clips == sorted([sha(a), sha(b)]) and landed == sorted(sha(x) for x in four)}, "
            f"SHA256SUMS complete: {sums_ok}, each file asked once: {sorted(st.asked.values())}", ok)


@fault("anonymous flood: 6 connections POST 3 KB unsigned to /webhooks/frameio for 15 s (round 3, 1)")
def webhook_flood(root):
    r = Rushes(root, Feed().url, {"FRAMEIO_WEBHOOK_SECRET": "whs3cret-flood"})
    body = json.dumps({"type": "comment.created", "resource": {"type": "comment", "id": "x"},
                       "pad": "p" * 3000}).encode()
    count, lock, stop = [0], threading.Lock(), threading.Event()

    def sender():
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        while not stop.is_set():
            try:
                conn.request("POST", "/webhooks/frameio", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 401:
                    with lock:
                        count[0] += 1
            except OSError:
                conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(15)  # the flood runs for a set time: this is the fault being staged
    stop.set()
    for t in threads:
        t.join()
    wal = os.path.join(root, "data", "rushes.db-wal")
    wal_mb = os.path.getsize(wal) / 1e6 if os.path.exists(wal) else 0.0
    counted = (r.json("/api/frameio/status") or {}).get("rejected_calls")
    up = r.status("/healthz") == 200
    r.stop()
    log = open(os.path.join(root, "logs", "app.log"), errors="replace").read()
    lines = sum(1 for l in log.splitlines() if "refused" in l)
    return (f"{count[0]} calls answered 401; WAL {wal_mb:.1f} MB after; {lines} log lines about them; "
            f"counted {counted}", f"service up: {up}",
            up and wal_mb < 16 and lines < 10 and counted == count[0])


@fault("tunnel agent behind a wrapper without exec, with a child of its own; SIGKILL of rushes (round 3, 4)")
def tunnel_children(root):
    api_port = free_port()
    agent = os.path.join(root, "ngrok")
    with open(agent, "w") as f:
        f.write("#!/bin/sh\n# wrapper without exec: the agent (and a helper) are its children\n"
                f"echo $$ > {root}/wrapper.pid\nsleep 3600 &\necho $! > {root}/helper.pid\n"
                f"exec python3 -c 'import http.server,json,os,sys;"
                f"open(\"{root}/agent.pid\",\"w\").write(str(os.getpid()));"
                "b=json.dumps({\"tunnels\":[{\"public_url\":\"https://f1.ngrok-free.app\",\"proto\":\"https\","
                "\"config\":{\"addr\":\"http://localhost:\"+sys.argv[2]}}]}).encode();"
                "H=type(\"H\",(http.server.BaseHTTPRequestHandler,),{\"do_GET\":lambda s:(s.send_response(200),s.end_headers(),s.wfile.write(b)),\"log_message\":lambda *a:None});"
                f"http.server.HTTPServer((\"127.0.0.1\",{api_port}),H).serve_forever()' \"$@\"\n")
    os.chmod(agent, 0o755)
    r = Rushes(root, Feed().url, {"RUSHES_TUNNEL": "ngrok", "NGROK_BIN": agent,
                                  "NGROK_API_ADDR": f"127.0.0.1:{api_port}"})
    wait("the agent", lambda: ((r.json("/api/frameio/status") or {}).get("tunnel") or {}).get("agent_state") == "running")
    pids = [int(open(os.path.join(root, n)).read().strip()) for n in ("wrapper.pid", "helper.pid", "agent.pid")]

    def alive(pid):
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0]
            return state not in "ZX"
        except (OSError, IndexError):
            return False

    before = [alive(p) for p in pids]
    r.kill9()
    try:
        wait("the agent's processes to die", lambda: not any(alive(p) for p in pids), timeout=15)
    except Exception:
        pass
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return (f"{sum(before)} processes (wrapper, helper, agent) running; rushes SIGKILLed; left after 15 s: {len(left)}",
            "-", all(before) and not left)


def main():
    for f in [feed_down, feed_slow, feed_garbage, feed_huge, feed_error, feed_utf8, drops, spliced,
              kill_downloads, disk_full, kill_webhooks, second_instance, rebinding, slowloris,
              brute, db_locked, hook_env, webhook_flood, tunnel_children, collision]:
        if len(sys.argv) > 1 and not any(a in f.__name__ for a in sys.argv[1:]):
            continue
        f()
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Fault suite", "",
        f"Written by `bash bench/faults.sh` on {now}, {os.cpu_count()} cores, release build, each fault in a",
        "fresh data folder with real servers on loopback (not part of CI). \"held\" = rushes stayed up,",
        "said what happened, and nothing it had acknowledged or recorded was lost.", "",
        "| fault | what rushes did | nothing lost? | verdict | s |", "|---|---|---|---|---|",
    ]
    for name, did, kept, verdict, secs in RESULTS:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {cell(name)} | {cell(did)} | {cell(kept)} | {verdict} | {secs:.0f} |")
    if len(sys.argv) == 1:
        with open(os.path.join(ROOT, "FAULTS.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
