#!/usr/bin/env python3
"""Writes the rows of issue 27 measured by bench/feed.sh (`rows`) into BENCHMARKS.md, between
the feed-rows markers. Runs after the measurements: nothing here is timed.

Usage: feed_rows.py WORK SMOKE LOAD_START LOAD_END ROW_RUNS INGEST_RUNS BEFORE_BIN NGINX_VERSION
"""

import datetime
import os
import re
import statistics
import sys

work, smoke, load_start, load_end, row_runs, ingest_runs, before_bin, nginx = sys.argv[1:9]
smoke = smoke == "1"


def numbers(name, column=0, scale=1.0):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return []
    return [float(line.split()[column]) * scale for line in open(path) if line.strip()]


med = statistics.median
ref = numbers("row_ref", scale=1e-3)  # ms
curl = numbers("row_curl", scale=1e-3)
before = numbers("row_before", scale=1e-3)
rushes = numbers("row_rushes", scale=1e-3)
ing_after = [line.split() for line in open(os.path.join(work, "ingest_rushes")) if line.strip()]
ing_before = [line.split() for line in open(os.path.join(work, "ingest_before")) if line.strip()]


def rss(name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return None
    kb, user, sys_ = open(path).read().split()[-3:]
    return int(kb) / 1024, (float(user) + float(sys_)) * 1000


summary = open(os.path.join(work, "row_rushes.out")).read()
m = re.search(r"(\d+) item\(s\): (\d+) valid", summary)
items = m.group(1) if m else "?"
size = os.path.getsize(os.path.join(work, "www", "feed.json"))


def check_cell(runs, rss_cpu):
    if not runs:
        return "", ""
    r, c = med(runs), med(curl)
    extra = f", CPU {rss_cpu[1]:.0f} ms, peak RSS {rss_cpu[0]:.0f} MiB" if rss_cpu else ""
    return (f"**{r:.0f} ms** = **{med(ref) / r:.1f}x** faster than the reference, "
            f"**{r / c:.2f}x** curl alone{extra}"), f"{min(runs):.0f}-{max(runs):.0f}"


def ingest_cell(runs):
    if not runs:
        return "", ""
    secs = [int(r[0]) / 1e6 for r in runs]
    peaks = [int(r[1]) / 1024 for r in runs]
    new = runs[0][2] if len(runs[0]) > 2 else "?"
    return (f"**{med(secs):.2f} s**, peak RSS **{max(peaks):.0f} MiB** ({new} new deliveries)",
            ", ".join(f"{s:.2f} s / {p:.0f} MiB" for s, p in zip(secs, peaks)))


after_cell, after_range = check_cell(rushes, rss("row_rushes.rss"))
before_cell, before_range = check_cell(before, rss("row_before.rss"))
ia, ia_runs = ingest_cell(ing_after)
ib, ib_runs = ingest_cell(ing_before)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
shown_before = f"`{before_bin}`" if before_bin else "(no BEFORE_BIN given)"
lines = [
    f"Measured {now} on {os.cpu_count()} cores, Linux {os.uname().release}; load average {load_start} at the "
    f"start, {load_end} at the end (the machine is shared with other builds: compare the ratios, which come "
    f"from the same run). Command: `BEFORE_BIN=… bash bench/feed.sh --rows`. Feed: `bench/gen_feed.py`, "
    f"{items} items ({size / 1e6:.1f} MB), a file served by nginx {nginx} on loopback (sendfile). "
    f"Whole processes timed by bash (`$EPOCHREALTIME`), {row_runs} runs interleaved: the reference "
    f"(`bench/reference_fetch.py`, the original `fetch_records()`, timed in-process once started), "
    f"`curl -s -o /dev/null URL`, before {shown_before}, after (this build). "
    f"`serve`: {ingest_runs} runs alternated, from process start to its log's first \"fetched N records\" "
    f"(followed by `tail -f`), peak RSS = the kernel's high-water mark (VmHWM).",
    "",
    "| measure | reference `fetch_records()` | `curl -o /dev/null` alone | before | after | goal |",
    "|---|---|---|---|---|---|",
    f"| `rushes feed check --quiet URL`, whole process (median) | {med(ref):.0f} ms | {med(curl):.0f} ms | "
    f"{before_cell} | {after_cell} | ≥ 12x the reference, ≤ 2.5x curl |",
    f"| its runs (min-max) | {min(ref):.0f}-{max(ref):.0f} ms | {min(curl):.0f}-{max(curl):.0f} ms | "
    f"{before_range} ms | {after_range} ms | |",
    f"| `serve`, first ingest, start to available (median of {ingest_runs}) | | | {ib} | {ia} | ≤ 1.5 s, ≤ 120 MiB |",
    f"| its runs | | | {ib_runs} | {ia_runs} | |",
]
text = "\n".join(lines)
print(text)
if smoke:
    sys.exit(0)
path = "BENCHMARKS.md"
doc = open(path).read()
start, end = "<!-- feed-rows:start (written by bench/feed.sh) -->", "<!-- feed-rows:end -->"
block = f"{start}\n{text}\n{end}"
if start in doc:
    doc = doc[:doc.index(start)] + block + doc[doc.index(end) + len(end):]
else:
    anchor = "<!-- feed-bench:start (written by bench/feed.sh) -->"
    head = ("### Issue 27's rows: whole processes against nginx (`bash bench/feed.sh --rows`)\n\n" + block + "\n\n")
    doc = doc.replace(anchor, head + anchor, 1) if anchor in doc else doc + "\n" + head
open(path, "w").write(doc)
