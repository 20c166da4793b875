"""Upload benchmark: `rushes frameio upload` vs `curl -T` of the same bytes on loopback.

The presigned-PUT endpoint is stood in for by nginx (WebDAV PUT, bodies written to tmpfs): rushes
sends its parts there, 4 at a time, and curl sends the whole file there in one PUT. The v4 API
calls (local_upload: one URL per 32 MiB part pointing at nginx; the upload status, complete once
every part is on disk at its size) are answered by a small HTTP server in this script. The file
lies in /dev/shm, so no disk is measured. Runs are interleaved; the ratio is curl's median time
over rushes' (above 1: rushes is faster). Peak RSS of rushes comes from GNU time. Numbers go into
BENCHMARKS.md between the `upload` markers.
"""

import http.server
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/rushes")
SIZE_MIB = int(os.environ.get("SIZE_MIB", "3072"))
RUNS = int(os.environ.get("RUNS", "3"))
PART = 32 << 20
TIME = "/usr/bin/time"
WORK = tempfile.mkdtemp(prefix="rushes-upload-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
STORE = os.path.join(WORK, "store")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nginx(port):
    conf = os.path.join(WORK, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 2;
daemon off;
error_log {WORK}/nginx-error.log;
pid {WORK}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {WORK}/tmp;
    proxy_temp_path {WORK}/tmp;
    fastcgi_temp_path {WORK}/tmp;
    uwsgi_temp_path {WORK}/tmp;
    scgi_temp_path {WORK}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {STORE};
        location / {{ dav_methods PUT; create_full_put_path on; }}
    }}
}}
""")
    os.makedirs(os.path.join(WORK, "tmp"), exist_ok=True)
    os.makedirs(STORE, exist_ok=True)
    # nginx's workers drop to an unprivileged user: they must be able to write the bodies.
    for d in (WORK, os.path.join(WORK, "tmp"), STORE):
        os.chmod(d, 0o777)
    proc = subprocess.Popen(["nginx", "-p", WORK, "-c", conf])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start")


def api_server(nginx_port):
    """The v4 calls of an upload: local_upload and the upload status."""
    files = {}

    class Api(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            size = int(body["data"]["file_size"])
            count = max(1, -(-size // PART))
            fid = f"bench-{len(files) + 1}"
            files[fid] = (size, count)
            urls = [{"size": PART, "url": f"http://127.0.0.1:{nginx_port}/s3/{fid}/part_{i + 1}?X-Amz-Signature=x"}
                    for i in range(count)]
            self.answer(201, {"data": {"id": fid, "name": body["data"]["name"], "status": "created",
                                       "file_size": size, "media_type": None, "upload_urls": urls,
                                       "view_url": f"http://127.0.0.1/view/{fid}"}})

        def do_GET(self):
            fid = self.path.split("/files/")[1].split("/")[0].split("?")[0]
            size, count = files.get(fid, (0, 1))
            folder = os.path.join(STORE, "s3", fid)
            on_disk = [os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)] if os.path.isdir(folder) else []
            complete = len(on_disk) == count and sum(on_disk) == size
            if self.path.rstrip("/").endswith("/status"):
                self.answer(200, {"data": {"id": fid, "upload_complete": complete}})
            else:
                self.answer(200, {"data": {"id": fid, "status": "uploaded" if complete else "created"}})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def make_file(path):
    # Random bytes (one random MiB repeated: nothing on the way compresses, and it is quick).
    block = os.urandom(1 << 20)
    with open(path, "wb") as dst:
        for _ in range(SIZE_MIB):
            dst.write(block)


def curl_once(port, path):
    start = time.monotonic()
    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-T", path, f"http://127.0.0.1:{port}/sink/file"], check=True)
    took = time.monotonic() - start
    shutil.rmtree(os.path.join(STORE, "sink"), ignore_errors=True)
    return took


def rushes_once(api_port, path):
    data = tempfile.mkdtemp(dir=WORK)
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
        "RUSHES_DATA_DIR": os.path.join(data, "data"), "RUSHES_LOG_DIR": os.path.join(data, "logs"),
        "FRAMEIO_API_BASE": f"http://127.0.0.1:{api_port}", "FRAMEIO_TOKEN": "bench-token",
        "FRAMEIO_ACCOUNT_ID": "acc", "FRAMEIO_UPLOAD_FOLDER_ID": "folder",
    }
    rss_file = os.path.join(data, "rss")
    start = time.monotonic()
    subprocess.run([TIME, "-f", "%M", "-o", rss_file, BIN, "frameio", "upload", path],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    took = time.monotonic() - start
    with open(rss_file) as f:
        rss_kib = int(f.read().strip().splitlines()[-1])
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(os.path.join(STORE, "s3"), ignore_errors=True)
    return took, rss_kib


def write_results(text):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        doc = f.read()
    begin, end = "<!-- upload:begin -->", "<!-- upload:end -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Frame.io upload (`bench/upload.sh`)\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


def main():
    for tool in ("nginx", "curl", TIME):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install nginx-light curl time)")
    if os.environ.get("NO_BUILD") != "1":
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "rushes"], cwd=ROOT, check=True)
    port = free_port()
    nginx = start_nginx(port)
    api = api_server(port)
    try:
        path = os.path.join(WORK, "cut.mov")
        make_file(path)
        curl_times, rushes_times, rss = [], [], []
        curl_once(port, path)  # warm up
        for _ in range(RUNS):
            curl_times.append(curl_once(port, path))
            took, kib = rushes_once(api.server_address[1], path)
            rushes_times.append(took)
            rss.append(kib)
    finally:
        api.shutdown()
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(WORK, ignore_errors=True)
    size = SIZE_MIB * (1 << 20)
    c, r = statistics.median(curl_times), statistics.median(rushes_times)
    load = os.getloadavg()[0]
    text = "\n".join([
        f"{SIZE_MIB} MiB from /dev/shm to nginx taking PUTs on loopback (the presigned-PUT stand-in; "
        f"32 MiB parts for rushes), {RUNS} interleaved runs, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, load average {load:.1f} at the end.",
        "",
        "| | median time | throughput |",
        "| --- | --- | --- |",
        f"| `curl -T` (one stream) | {c:.2f} s | {size / c / 1e6:.0f} MB/s |",
        f"| `rushes frameio upload` (4 parts at once, whole v4 flow) | {r:.2f} s | {size / r / 1e6:.0f} MB/s |",
        "",
        f"Ratio (curl time / rushes time): **{c / r:.2f}x** (runs: curl "
        + ", ".join(f"{t:.2f}" for t in curl_times) + " s; rushes "
        + ", ".join(f"{t:.2f}" for t in rushes_times) + " s).",
        f"Peak RSS of rushes: **{max(rss) / 1024:.1f} MiB** (runs: "
        + ", ".join(f"{k / 1024:.1f}" for k in rss) + " MiB).",
    ])
    print(text)
    write_results(text)


if __name__ == "__main__":
    main()
