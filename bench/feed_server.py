#!/usr/bin/env python3
"""Loopback feed server for bench/feed.sh. Sends no validators (no ETag, no Last-Modified), so
every poll gets the whole body, as in issue 17.

  GET /feed   the first WINDOW items of the items file (always the same body).
  GET /grow   a window of WINDOW lines of the items file, moved on by STEP items at every request
              (a feed that gains STEP new records per poll, the oldest leaving it).

Usage: feed_server.py ITEMS_FILE WINDOW STEP PORT_FILE
"""

import http.server
import sys
import threading

items_path, window, step, port_file = sys.argv[1:5]
window, step = int(window), int(step)
with open(items_path, "rb") as f:
    ITEMS = [line.rstrip(b",\n") for line in f if line.startswith(b"{") or line.startswith(b'"')]
FEED = b"[\n" + b",\n".join(ITEMS[:window]) + b"\n]\n"
lock = threading.Lock()
polls = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/feed":
            body = FEED
        elif self.path == "/grow":
            with lock:
                start = polls[0] * step
                polls[0] += 1
            body = b"[\n" + b",\n".join(ITEMS[start:start + window]) + b"\n]\n"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
