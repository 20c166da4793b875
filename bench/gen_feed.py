#!/usr/bin/env python3
"""Writes a large delivery feed for benchmarks: `gen_feed.py N OUT.json [SEED]`.

Like a real feed grown over months: both record formats (new `source_url`/`r2_url`/`provider`/
`created_at`/`original_filename`, legacy `url`/`timestamp`/`source`, some legacy ones with the new
keys set to null), Dropbox links spelled with the artefacts real feeds carry (`&amp;`, `amp%3B`,
`DL=0`, reordered parameters, fragments, upper-case hosts, trailing slashes), about 10 %
re-listings of an earlier delivery (same link spelled differently, or same R2 copy), manual links
(FromSmash, SwissTransfer, others), timestamps spread over 400 days in several spellings, and
about 3 % invalid items (missing or bad fields, not an object). Deterministic for a given seed.
One item per line, so that bench/feed_server.py can serve any window of it (a feed that grows).
"""

import datetime
import json
import random
import sys


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/rushes-feed-100k.json"
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 11)
    now = datetime.datetime.now(datetime.timezone.utc)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

    def token(k):
        return "".join(rng.choice(alphabet) for _ in range(k))

    def when(days):
        t = now - datetime.timedelta(seconds=rng.randint(0, int(days * 86400)))
        style = rng.randrange(4)
        if style == 0:
            return t.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        if style == 1:
            return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        if style == 2:
            return (t + datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+0200")
        return t.strftime("%Y-%m-%d %H:%M:%S")

    def dropbox_link(folder, ident, rlkey, spelling):
        host = "www.dropbox.com" if spelling % 5 else "WWW.Dropbox.com"
        kind = "scl/fo" if folder else "scl/fi"
        slash = "/" if spelling % 7 == 0 else ""
        params = [f"rlkey={rlkey}", ["dl=0", "dl=1", "DL=0", "dl=0&"][spelling % 4]]
        if spelling % 3 == 0:
            params.reverse()
        sep = ["&", "&amp;", "&amp%3B", "&"][spelling % 4]
        frag = "#preview" if spelling % 11 == 0 else ""
        return f"https://{host}/{kind}/{ident}{slash}?{sep.join(params)}{frag}"

    deliveries = []  # (link builder args, r2) of every distinct delivery so far
    items = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.03:
            items.append(
                rng.choice(
                    [
                        {"url": f"https://www.dropbox.com/s/{token(8)}/x.mov"},
                        {"url": "not a link", "timestamp": when(30)},
                        {"url": f"https://fromsmash.com/{token(6)}", "timestamp": "17/10/2025"},
                        {"source_url": f"https://www.dropbox.com/s/{token(8)}", "provider": "dropbox",
                         "created_at": when(30)},
                        "not an object",
                        {"link": "https://example.com/x"},
                    ]
                )
            )
            continue
        if roll < 0.13 and deliveries:
            # A re-listing of an earlier delivery: another spelling of its link, or its R2 copy.
            folder, ident, rlkey, r2 = rng.choice(deliveries)
            link = dropbox_link(folder, ident, rlkey, rng.randrange(1000))
            if rng.random() < 0.5 or r2 is None:
                items.append({"url": link, "timestamp": when(400), "source": "dropbox",
                              "source_url": None, "r2_url": None})
            else:
                items.append({"source_url": f"https://www.dropbox.com/scl/fo/{token(12)}/x?rlkey={token(8)}&dl=0",
                              "r2_url": r2, "provider": "dropbox", "created_at": when(400),
                              "original_filename": f"{rng.randint(1, 999)} Re-share.zip"})
            continue
        if roll < 0.25:
            kind = rng.random()
            if kind < 0.5:
                link = f"https://fromsmash.com/{token(10)}"
            elif kind < 0.8:
                link = f"https://www.swisstransfer.com/d/{token(8)}-{token(4)}-{token(4)}"
            else:
                link = f"https://wetransfer.com/downloads/{token(16)}/{token(6)}"
            items.append({"url": link, "timestamp": when(400), "source": "webhook"})
            continue
        folder = rng.random() < 0.6
        ident, rlkey = f"{token(21)}/{token(6)}", token(25)
        link = dropbox_link(folder, ident, rlkey, rng.randrange(1000))
        if rng.random() < 0.55:
            r2 = f"https://server.example.workers.dev/dropbox/{token(8)}/{token(10)}/file"
            deliveries.append((folder, ident, rlkey, r2))
            items.append({
                "source_url": link,
                "r2_url": r2,
                "provider": "dropbox",
                "created_at": when(400),
                "original_filename": f"{rng.randint(1, 999)} {rng.choice(['Camille', 'Interview', 'Drone', 'B-roll', 'Making-of'])}.{'zip' if folder else 'mov'}",
            })
        else:
            deliveries.append((folder, ident, rlkey, None))
            items.append({"url": link, "timestamp": when(400), "source": "dropbox"})
    # One item per line (bench/feed_server.py serves windows of lines).
    with open(out, "w") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(item, separators=(",", ":")) for item in items))
        f.write("\n]\n")
    print(out)


if __name__ == "__main__":
    main()
