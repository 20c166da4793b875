"""Upload benchmark: `rushes frameio upload` vs `curl -T` of the same bytes on loopback.

Both send to bench/upload_standin.rs (a release build), which reads every body to its end and
drops it: rushes through the v4 flow (local_upload, its parts PUT in parallel to presigned URLs,
completion by status), curl as one PUT of the whole file. The file lies in /dev/shm (tmpfs), so
the disk is not measured. Runs are interleaved; the ratio is curl's median time over rushes'
(above 1: rushes is faster). Peak RSS of rushes comes from GNU time. Numbers go into
BENCHMARKS.md between the `upload` markers.
"""

import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/rushes")
SIZE_MIB = int(os.environ.get("SIZE_MIB", "3072"))
RUNS = int(os.environ.get("RUNS", "3"))
TIME = "/usr/bin/time"


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "rushes"], cwd=ROOT, check=True)
    out = subprocess.run(
        ["cargo", "bench", "--bench", "upload_standin", "--no-run", "--message-format=short"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    found = re.findall(r"\(([^)]*upload_standin-[0-9a-f]+)\)", out.stderr + out.stdout)
    if not found:
        raise SystemExit("cannot find the upload_standin binary:\n" + out.stderr)
    return found[-1]


def start_standin(binary):
    proc = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        raise SystemExit(f"stand-in did not start: {line!r}")
    return proc, line.split()[1]


def make_file(path):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(SIZE_MIB):
            f.write(block)


def curl_once(addr, path):
    start = time.monotonic()
    subprocess.run(
        ["curl", "-sS", "-f", "-o", "/dev/null", "-T", path, f"http://{addr}/sink/file"],
        check=True,
    )
    return time.monotonic() - start


def rushes_once(addr, path, work):
    data = tempfile.mkdtemp(dir=work)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "RUSHES_DATA_DIR": os.path.join(data, "data"),
        "RUSHES_LOG_DIR": os.path.join(data, "logs"),
        "FRAMEIO_API_BASE": f"http://{addr}",
        "FRAMEIO_TOKEN": "bench-token",
        "FRAMEIO_ACCOUNT_ID": "acc",
        "FRAMEIO_UPLOAD_FOLDER_ID": "folder",
    }
    rss_file = os.path.join(data, "rss")
    start = time.monotonic()
    subprocess.run(
        [TIME, "-f", "%M", "-o", rss_file, BIN, "frameio", "upload", path],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    took = time.monotonic() - start
    with open(rss_file) as f:
        rss_kib = int(f.read().strip().splitlines()[-1])
    shutil.rmtree(data, ignore_errors=True)
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
    for tool in ("curl", TIME):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install curl time)")
    standin = build()
    work = tempfile.mkdtemp(prefix="rushes-upload-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    proc, addr = start_standin(standin)
    try:
        path = os.path.join(work, "cut.mov")
        make_file(path)
        curl_times, rushes_times, rss = [], [], []
        curl_once(addr, path)  # warm the page cache and the stand-in
        for _ in range(RUNS):
            curl_times.append(curl_once(addr, path))
            took, kib = rushes_once(addr, path, work)
            rushes_times.append(took)
            rss.append(kib)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    size = SIZE_MIB * (1 << 20)
    c, r = statistics.median(curl_times), statistics.median(rushes_times)
    load = os.getloadavg()[0]
    text = "\n".join([
        f"{SIZE_MIB} MiB from /dev/shm to a local stand-in of the presigned-PUT endpoint "
        f"(bench/upload_standin.rs, 32 MiB parts), {RUNS} interleaved runs, "
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, load {load:.1f} at the end.",
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
