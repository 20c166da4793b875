#!/usr/bin/env python3
"""The reference for the feed benchmark: the original Python service's `fetch_records()`.

The original code is not available here. This is a faithful small rewrite of what the seed
describes (webhook-source-integration.fr.md): `requests.get` with the timeout, `.json()`, then
each item validated in a Python loop (both formats, required fields, ISO 8601 / MySQL timestamps),
its URL classified (dropbox / fromsmash / swisstransfer / external), invalid items skipped and
logged at DEBUG. It does less than rushes does per record (no dedupe-key normalisation, no file
name planning), so the comparison favours it.

Usage: reference_fetch.py URL [RUNS]  -> prints one line per run: "<seconds> <valid> <invalid>"
"""

import logging
import sys
import time
from datetime import datetime
from urllib.parse import urlparse

import requests

logger = logging.getLogger("webhook_service")


def parse_ts(raw):
    raw = raw.strip()
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if ts.tzinfo is None and "T" in raw:
            raise ValueError("no offset")
        return ts
    except ValueError:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S")


def classify_url(url):
    host = (urlparse(url).hostname or "").lower()
    if host.endswith("dropbox.com") or host.endswith("dropboxusercontent.com") or (
            host.endswith("workers.dev") and "/dropbox/" in url):
        return "dropbox"
    if "fromsmash" in host:
        return "fromsmash"
    if "swisstransfer" in host:
        return "swisstransfer"
    return "external"


def validate(item):
    if not isinstance(item, dict):
        raise ValueError("item is not an object")
    if "source_url" in item:
        url = item["source_url"]
        for field in ("source_url", "provider", "created_at", "original_filename"):
            if not isinstance(item.get(field), str) or not item[field].strip():
                raise ValueError(f"missing field {field}")
        ts = parse_ts(item["created_at"])
        provider = item["provider"]
        r2 = item.get("r2_url")
    elif "url" in item:
        url = item["url"]
        if not isinstance(url, str) or not isinstance(item.get("timestamp"), str):
            raise ValueError("missing field")
        ts = parse_ts(item["timestamp"])
        provider = item.get("source") or "webhook"
        r2 = None
    else:
        raise ValueError("unknown format")
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("not an http(s) URL")
    kind = classify_url(url)
    if kind == "external" and str(provider).lower() == "dropbox":
        kind = "dropbox"
    return {"url": url, "r2_url": r2, "timestamp": ts, "source": provider, "type": kind,
            "mode": "auto" if kind == "dropbox" or r2 else "manual",
            "original_filename": item.get("original_filename")}


def fetch_records(url, timeout=30):
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    data = response.json()
    records, invalid = [], 0
    for item in data:
        try:
            records.append(validate(item))
        except Exception as e:  # noqa: BLE001 - the original skipped any bad item
            invalid += 1
            logger.debug("WebhookService: skipping invalid item due to error: %s", e)
    logger.info("WebhookService: fetched %d records from webhook", len(records))
    return records, invalid


def main():
    url = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for _ in range(runs):
        start = time.perf_counter()
        records, invalid = fetch_records(url)
        elapsed = time.perf_counter() - start
        print(f"{elapsed:.4f} {len(records)} {invalid}", flush=True)


if __name__ == "__main__":
    main()
