"""Reading time of every walkthrough step, as a plain README and as its site page, by the
course's measure: 200 words of prose a minute plus 15 lines of code a minute (lines inside
code fences; HTML comments, such as cog's markers, are not read). Fails, naming the page,
when any is over the limit (default 15 minutes), so a step cannot grow past one sitting
without the build saying so. The site page is the step's docs/walkthroughs/<step>.md with
its includes expanded: the README, and the step's one picture caption when it has been
generated (build/docs/generated); the step's details and scenarios pages are appendices.

usage: reading_time.py REPO_ROOT [--limit MINUTES]"""
import argparse
import pathlib
import re
import sys

WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 15
INCLUDE = re.compile(r'^\s*--8<--\s+"([^"]+)"\s*$')
LINES = re.compile(r"^(.*?):(\d*)(?::(\d*))?$")
COMMENT = re.compile(r"<!--.*?-->", re.S)


def expand(root, text):
    """The Markdown with snippet includes replaced by what they include. A missing generated
    file (under build/, made by the docs build) counts as empty: the page is measured without
    it. Any other missing include is an error naming it."""
    out = []
    for line in text.splitlines():
        m = INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        target = m.group(1)
        lines = LINES.match(target)
        start = end = None
        if lines and (lines.group(2) or lines.group(3)):
            target = lines.group(1)
            start, end = (int(n) if n else None for n in lines.group(2, 3))
        path = root / target
        if path.is_file():
            body = path.read_text().splitlines()
            out.extend(body[(start or 1) - 1:end])
        elif not target.startswith("build/"):
            sys.exit(f"reading_time.py: the page includes {target}, which does not exist")
    return "\n".join(out)


def minutes(text):
    """(words, code lines, minutes) of a Markdown text."""
    words = code = 0
    inside = False
    for line in COMMENT.sub("", text).splitlines():
        if line.strip().startswith(("```", "~~~")):
            inside = not inside
            continue
        if inside:
            code += 1
        else:
            words += len(line.split())
    return words, code, words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--limit", type=float, default=15.0)
    args = parser.parse_args()
    root = pathlib.Path(args.root).resolve()
    over = []
    print(f"{'step':34} {'README':>21} {'site page':>21}")
    readmes = sorted((root / "walkthroughs").glob("*/README.md"))
    if not readmes:
        sys.exit(f"reading_time.py: no walkthrough step under {root / 'walkthroughs'}")
    for readme in readmes:
        step = readme.parent.name
        plain = minutes(readme.read_text())
        page = root / "docs" / "walkthroughs" / f"{step}.md"
        if not page.is_file():
            sys.exit(f"reading_time.py: step {step} has no site page (docs/walkthroughs/{step}.md)")
        site = minutes(expand(root, page.read_text()))
        shown = f"{site[0]:5d} w {site[1]:3d} c {site[2]:4.1f} min"
        print(f"{step:34} {plain[0]:5d} w {plain[1]:3d} c {plain[2]:4.1f} min {shown}")
        for name, measured in (("README", plain), ("site page", site)):
            if measured[2] > args.limit:
                over.append(f"{step} {name}: {measured[2]:.1f} minutes (limit {args.limit:g})")
    if over:
        sys.exit("reading_time.py: pages over the limit:\n  " + "\n  ".join(over))


if __name__ == "__main__":
    main()
