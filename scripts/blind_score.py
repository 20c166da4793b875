#!/usr/bin/env python3
"""Scores comment batches blind, before anyone reads them (issue 24).

For each `NN-slug.json` in the incoming folder (default /work/blind/incoming), oldest name first:
runs `rushes frameio verdict --eval` on it with the reader as it is now, appends a row to the
blind-score table of BENCHMARKS.md (batch, persona from `NN-slug.meta.txt`, size, accuracy,
confidently wrong %, not confident %, false approvals, the commit that scored it), then moves the
batch and its meta to the scored folder. Prints only the eval summary, never a comment.

Usage: python3 scripts/blind_score.py [--bin target/debug/rushes] [--incoming DIR] [--scored DIR]
"""

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
START = "<!-- blind_scores:start -->"
END = "<!-- blind_scores:end -->"
HEADER = (
    "| batch | writer persona | size | accuracy | confidently wrong | not confident "
    "| false approvals (confident / guessed) | scored by | blind |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def reader_version():
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def score(binary, batch):
    out = subprocess.run(
        [binary, "frameio", "verdict", "--eval", str(batch)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode not in (0, 1):
        raise SystemExit(f"{batch.name}: eval failed ({out.returncode}): {out.stderr.strip()}")
    text = out.stdout

    def grab(pattern):
        m = re.search(pattern, text)
        if not m:
            raise SystemExit(f"{batch.name}: no {pattern!r} in the eval output")
        return m.groups()

    (size,) = grab(r"confusion matrix \((\d+) comments")
    (acc,) = grab(r"accuracy ([\d.]+) %")
    (wrong,) = grab(r"confidently wrong ([\d.]+) %")
    (unsure,) = grab(r"not confident ([\d.]+) %")
    conf_fa, guess_fa = grab(r"false approvals: (\d+) confident.*?, (\d+) guessed")
    return text, int(size), acc, wrong, unsure, conf_fa, guess_fa


def add_row(row):
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    if START not in doc:
        doc += (
            f"\n{START}\n## Review verdicts measured blind (issue 24)\n\n"
            "Each batch was written outside the project by one writer with the persona shown, "
            "and scored by `scripts/blind_score.py` (`rushes frameio verdict --eval`) with the "
            "reader of the commit shown, before anyone read it; only then was it read and added "
            "to `tests/data/`. Targets: confidently wrong ≤ 3 %, not confident ≤ 12 %, no "
            "confident false approval.\n\n"
            f"{HEADER}{END}\n"
        )
    doc = doc.replace(END, row + "\n" + END)
    path.write_text(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/debug/rushes"))
    ap.add_argument("--incoming", default="/work/blind/incoming")
    ap.add_argument("--scored", default="/work/blind/scored")
    args = ap.parse_args()
    incoming = pathlib.Path(args.incoming)
    scored = pathlib.Path(args.scored)
    version = reader_version()
    batches = sorted(incoming.glob("*.json"))
    if not batches:
        print("no batch waiting")
    for batch in batches:
        meta = batch.with_suffix(".meta.txt")
        if not meta.exists():
            print(f"{batch.name}: no meta yet, left for later")
            continue
        try:
            json.loads(batch.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            print(f"{batch.name}: not complete JSON yet ({e.__class__.__name__}), left for later")
            continue
        persona = " ".join(meta.read_text().split()).replace("|", "/")
        report, size, acc, wrong, unsure, conf_fa, guess_fa = score(args.bin, batch)
        print(f"== {batch.name}\n{report}")
        add_row(
            f"| {batch.stem} | {persona} | {size} | {acc} % | {wrong} % | {unsure} % "
            f"| {conf_fa} / {guess_fa} | `{version}` | yes |"
        )
        shutil.move(str(batch), scored / batch.name)
        shutil.move(str(meta), scored / meta.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
