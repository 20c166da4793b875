#!/usr/bin/env python3
"""Structure figures for src/ (issue 23's proof): files over 500 and 700 lines, functions over 80
and 120 lines (test code left out), and loops between the files of one folder (A uses B and B uses A, directly or
through other files of the same folder; the folder's mod.rs, its front, is left out). A file's size counts every line; a function's leaves test
code out (`tests.rs`, `#[cfg(test)] mod tests { … }`). Prints a summary; `--list` names every offender.

Usage: python3 scripts/structure.py [--list] [SRC]
"""

import pathlib
import re
import sys

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+([a-z_0-9]+)")


def code_lines(text):
    """The file's lines with top-level test modules blanked out (rustfmt closes a top-level
    module with a `}` alone at column 0)."""
    lines = text.splitlines()
    out = list(lines)
    i = 0
    while i < len(lines):
        if lines[i] == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"(pub\s+)?mod\s+\w+\s*\{", lines[i + 1]):
            j = i + 1
            while j < len(lines) and lines[j] != "}":
                j += 1
            for k in range(i, min(j + 1, len(lines))):
                out[k] = ""
            i = j + 1
            continue
        i += 1
    return out


def functions(lines):
    """(name, first line, length) of every fn with a body."""
    found = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth = 0
        opened = False
        for j in range(i, len(lines)):
            stripped = lines[j].split("//", 1)[0]
            if not opened and ";" in stripped and "{" not in stripped:
                break  # a declaration without a body (trait method)
            depth += stripped.count("{") - stripped.count("}")
            if "{" in stripped:
                opened = True
            if opened and depth <= 0:
                found.append((m.group(1), i + 1, j - i + 1))
                break
    return found


def module_name(path, folder):
    rel = path.relative_to(folder)
    first = rel.parts[0]
    return first.removesuffix(".rs")


def folder_loops(src):
    """Cycles between sibling modules of each folder (mod.rs counts as the module `mod`)."""
    loops = []
    for folder in sorted({p.parent for p in src.rglob("*.rs")}):
        members = {}
        for p in folder.iterdir():
            if p.suffix == ".rs":
                members[p.stem] = [p]
            elif p.is_dir() and any(p.rglob("*.rs")):
                members[p.name] = list(p.rglob("*.rs"))
        if len(members) < 2:
            continue
        crate_path = "::".join(folder.relative_to(src).parts)
        edges = {m: set() for m in members}
        for name, files in members.items():
            for f in files:
                if f.name == "tests.rs":
                    continue
                text = "\n".join(code_lines(f.read_text()))
                text = "\n".join(l.split("//", 1)[0] for l in text.splitlines())
                depth_up = len(f.relative_to(folder).parts) - 1  # files inside a sub-folder
                refs = set()
                names = []
                if name != "mod":
                    sup = "super::" * (depth_up + 1)
                    for m in re.finditer(re.escape(sup) + r"(?:\{([^}]*)\}|(\w+))", text):
                        names += [m.group(2)] if m.group(2) else re.findall(r"(?:^|,)\s*(\w+)", m.group(1))
                else:
                    for m in re.finditer(r"\bself::(\w+)", text):
                        names.append(m.group(1))
                    for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+(\w+)::", text, re.M):
                        names.append(m.group(1))
                if crate_path:
                    for m in re.finditer(r"\bcrate::" + re.escape(crate_path) + r"::(?:\{([^}]*)\}|(\w+))", text):
                        names += [m.group(2)] if m.group(2) else re.findall(r"(?:^|,)\s*(\w+)", m.group(1))
                for n in names:
                    if n in members:
                        refs.add(n)
                    elif n not in ("self", "super", "crate") and "mod" in members:
                        refs.add("mod")  # an item defined in the folder's mod.rs
                # mod.rs is the folder's front (it declares and re-exports its files, and holds
                # what they share): edges through it are not loops between files.
                if name != "mod":
                    edges[name].update(r for r in refs if r not in (name, "mod"))
        # Pairs on a cycle: B reachable from A and A from B.
        def reach(a):
            seen, todo = set(), [a]
            while todo:
                x = todo.pop()
                for y in edges.get(x, ()):
                    if y not in seen:
                        seen.add(y)
                        todo.append(y)
            return seen

        r = {m: reach(m) for m in members}
        for a in sorted(members):
            for b in sorted(members):
                if a < b and b in r[a] and a in r[b]:
                    loops.append(f"{folder.relative_to(src)}: {a} <-> {b}")
    return loops


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show = "--list" in sys.argv
    src = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent / "src")
    big500, big700, fn80, fn120 = [], [], [], []
    for path in sorted(src.rglob("*.rs")):
        if path.name == "tests.rs":
            continue
        lines = code_lines(path.read_text())
        rel = path.relative_to(src)
        count = len(path.read_text().splitlines())  # a file's size counts its tests too
        if count > 500:
            big500.append(f"{rel} {count}")
        if count > 700:
            big700.append(f"{rel} {count}")
        for name, first, length in functions(lines):
            if length > 80:
                fn80.append(f"{rel}:{first} {name} {length}")
            if length > 120:
                fn120.append(f"{rel}:{first} {name} {length}")
    loops = folder_loops(src)
    print(f"files over 500 lines: {len(big500)}; over 700: {len(big700)}")
    print(f"functions over 80 lines: {len(fn80)}; over 120: {len(fn120)}")
    print(f"loops between files of one folder: {len(loops)}")
    if show:
        for title, rows in (("over 500", big500), ("fn over 80", fn80), ("loops", loops)):
            print(f"-- {title}")
            for row in rows:
                print(row)


if __name__ == "__main__":
    main()
