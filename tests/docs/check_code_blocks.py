"""Checks that every code block of the documentation site is either included from a file of
the project (a single `--8<-- "path:region"` line, which check_snippets.py verifies), or
written from one by cog (inside a `[[[cog listing(...)]]]`, `function(...)` or
`changes(...)` ... `[[[end]]]` block, which tools/listings.py --check verifies), or visibly
marked as pseudo-code (a fence with title="pseudo-code"). Blocks of shell commands
and program output (languages sh, console, text) are allowed as they are: they show how to
run things, not code of the project.

Pages checked: docs/**/*.md (except generated folders) and the walkthrough READMEs and details pages,
which the site includes.

usage: check_code_blocks.py REPO_ROOT"""
import pathlib
import re
import sys

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
INCLUDE = re.compile(r'^\s*--8<--\s+"[^"]+"\s*$')
COMMANDS_AND_OUTPUT = {"sh", "bash", "console", "text"}


def pages(root):
    docs = [p for p in (root / "docs").rglob("*.md")
            if not {"_generated", "api"} & set(p.relative_to(root / "docs").parts)]
    steps = root / "walkthroughs"
    return sorted(docs) + sorted([*steps.glob("*/README.md"), *steps.glob("*/details.md")])


def blocks(path):
    """(line number, info string, body lines, written by cog) for every fenced block of `path`."""
    lines = path.read_text().splitlines()
    i, in_cog = 0, False
    while i < len(lines):
        if "[[[cog" in lines[i] and any(call in lines[i] for call in ("listing(", "function(", "changes(")):
            in_cog = True
        if "[[[end]]]" in lines[i]:
            in_cog = False
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group(2), m.group(3).strip(), i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        yield start, info, body, in_cog
        i += 1


def check(root):
    root = pathlib.Path(root)
    problems = []
    for page in pages(root):
        for line, info, body, written_by_cog in blocks(page):
            language = info.split()[0] if info else ""
            content = [b for b in body if b.strip()]
            if written_by_cog or len(content) == 1 and INCLUDE.match(content[0]):
                continue
            if 'title="pseudo-code"' in info:
                continue
            if language in COMMANDS_AND_OUTPUT:
                continue
            problems.append(f"{page.relative_to(root)}:{line}: a ```{info or '(no language)'} block that is "
                            "neither an include of a compiled file nor titled pseudo-code")
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    problems = check(sys.argv[1])
    if problems:
        sys.exit("code blocks that would drift from the code:\n  " + "\n  ".join(problems))
    print("ok: every code block is included or marked")


if __name__ == "__main__":
    main()
