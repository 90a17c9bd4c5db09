"""Checks that every snippet include in the project's Markdown resolves.

An include is a line `--8<-- "path:region"` (pymdownx.snippets syntax); `path` is relative
to the repository root and `region` must be delimited in that file by the lines
`--8<-- [start:region]` and `--8<-- [end:region]` (in a comment). A missing file, a missing
region, an empty region or an unbalanced marker fails the check, so prose cannot drift away
from the compiled code it quotes.

usage: check_snippets.py REPO_ROOT"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*--8<--\s+"([^"]+)"\s*$')
MARKER = re.compile(r'--8<--\s+\[(start|end):([A-Za-z0-9_\-]+)\]')


def regions(path):
    found, open_at = {}, {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = MARKER.search(line)
        if not m:
            continue
        kind, name = m.groups()
        if kind == "start":
            if name in open_at or name in found:
                yield None, f"{path}:{number}: region '{name}' started twice"
            open_at[name] = number
        else:
            if name not in open_at:
                yield None, f"{path}:{number}: region '{name}' ends without a start"
                continue
            found[name] = number - open_at.pop(name) - 1
    for name, number in open_at.items():
        yield None, f"{path}:{number}: region '{name}' never ends"
    for name, length in found.items():
        yield name, length


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[1]).resolve()
    problems, count = [], 0
    markdown = [p for p in root.rglob("*.md")
                if not any(part in {"build", ".venv", "node_modules", "site"} or part.startswith(".")
                           for part in p.relative_to(root).parts)]
    cache = {}
    for md in sorted(markdown):
        for number, line in enumerate(md.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            count += 1
            where = f"{md.relative_to(root)}:{number}"
            target, _, region = m.group(1).partition(":")
            path = root / target
            if not path.is_file():
                problems.append(f"{where}: no file {target}")
                continue
            if not region:
                continue
            if path not in cache:
                cache[path] = {}
                for name, info in regions(path):
                    if name is None:
                        problems.append(info)
                    else:
                        cache[path][name] = info
            if region not in cache[path]:
                problems.append(f"{where}: no region '{region}' in {target}")
            elif cache[path][region] == 0:
                problems.append(f"{where}: region '{region}' in {target} is empty")
    if problems:
        sys.exit("snippet includes that do not resolve:\n  " + "\n  ".join(problems))
    print(f"ok: {count} snippet includes resolve")


if __name__ == "__main__":
    main()
