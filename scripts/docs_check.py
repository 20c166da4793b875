#!/usr/bin/env python3
"""Checks the documentation: README.md is at most 400 lines, every relative link of README.md and
docs/*.md points at a file (and heading) that exists, and, given an older README, every
environment variable it names is still named in README.md or docs/.
Usage: python3 scripts/docs_check.py [OLD_README_FILE]
e.g.   git show 1700d97:README.md > /tmp/old.md && python3 scripts/docs_check.py /tmp/old.md"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
text = {p: p.read_text() for p in pages}
problems = []

if len(sys.argv) > 1:
    old = pathlib.Path(sys.argv[1]).read_text()
    names = set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", old))
    everything = "\n".join(text.values())
    for name in sorted(names):
        if name not in everything:
            problems.append(f"variable {name} is no longer documented")


def anchors(md: str) -> set:
    out = set()
    fence = False
    for line in md.splitlines():
        if line.startswith("```"):
            fence = not fence
        m = re.match(r"^#+ (.*)", line)
        if m and not fence:
            slug = m.group(1).strip().lower()
            slug = re.sub(r"[^\w\- ]", "", slug).replace(" ", "-")
            out.add(slug)
    return out


for page, md in text.items():
    for target in re.findall(r"\]\(([^)\s]+)\)", md):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{page.relative_to(ROOT)}: link to missing {target}")
            continue
        if anchor and dest.suffix == ".md":
            if anchor not in anchors(dest.read_text()):
                problems.append(f"{page.relative_to(ROOT)}: no heading #{anchor} in {path or page.name}")

lines = len(text[ROOT / "README.md"].splitlines())
if lines > 400:
    problems.append(f"README.md has {lines} lines (at most 400)")
print("\n".join(problems) if problems else f"docs: ok (README {lines} lines, {len(pages) - 1} pages in docs/)")
sys.exit(1 if problems else 0)
