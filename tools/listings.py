"""The code listings in the walkthrough READMEs: written from the compiled sources, and
checked against them, with cog (the cogapp package).

A step's README must read well as a plain file, so its code is in the README itself. Each
listing sits in a cog block whose generator names the source file and region:

    <!-- [[[cog listing("walkthroughs/02-lock-that-deadlocks/locked_lazy_types.cpp", "static")]]] -->
    ```cpp
    ...the region's code, as compiled, minus its tracing lines...
    ```
    <!-- [[[end]]] -->

`tools/listings.py --write` regenerates every block; `--check` fails (exit 1, naming the
file) when any block differs from what its source would give, so a region that changes
without its README breaks the build. A region is the text between the lines
`--8<-- [start:NAME]` and `--8<-- [end:NAME]` (in comments) of the source file.

Tracing calls (`harness::record(...)`, `harness::note(...)`, `harness::note_on(...)`, `waits_for(...)`) write the
trace the main job narrates; they are not part of the lesson, so listings leave them out.
Each must be one statement on one line, so that leaving it out leaves valid code; a tracing
call spread over several lines is an error naming the file and line.

`function(path, fragment)` lists a whole function definition from a file that carries no
markers (the shipped headers): the definition whose first line contains the literal
`fragment`, with the `//` comment and `template <...>` lines directly above it, through its
matching closing brace (tools/cpp_scan.py finds it; braces in comments and literals do not
count). The fragment must occur exactly once in the file's code, else an error names the
file and the count:

    <!-- [[[cog function("reference/include/gilonce/py_once_lock.hpp", "GILONCE_COLD const T* initialize(F& init) {")]]] -->

`changes(...)` writes a unified diff of two regions: what one step changed from the last.

usage: listings.py --check | --write [--root DIR] [README ...]"""
import argparse
import difflib
import os
import pathlib
import re
import sys
import textwrap

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # cpp_scan, beside this file
import cpp_scan  # noqa: E402

ROOT_ENV = "GILONCE_LISTINGS_ROOT"
MARKER = re.compile(r"--8<--\s+\[(start|end):([A-Za-z0-9_\-]+)\]")
TRACING = re.compile(r"^\s*(harness::record|harness::note|harness::note_on|waits_for)\(")
TEMPLATE = re.compile(r"^\s*template\s*<")
LANGUAGES = {".cpp": "cpp", ".hpp": "cpp", ".h": "cpp", ".py": "python", ".cmake": "cmake"}


class ListingError(Exception):
    pass


def root():
    return pathlib.Path(os.environ.get(ROOT_ENV, pathlib.Path(__file__).resolve().parent.parent))


def region_lines(path, region):
    """The lines of `region` in `path` (relative to the root), as written."""
    source = root() / path
    if not source.is_file():
        raise ListingError(f"{path}: no such file")
    lines, inside, found = [], False, False
    for number, line in enumerate(source.read_text().splitlines(), 1):
        m = MARKER.search(line)
        if m and m.group(2) == region:
            if m.group(1) == "start":
                inside, found = True, True
            else:
                inside = False
            continue
        if inside:
            lines.append((number, line))
    if not found:
        raise ListingError(f"{path}: no region '{region}'")
    if inside:
        raise ListingError(f"{path}: region '{region}' never ends")
    if not lines:
        raise ListingError(f"{path}: region '{region}' is empty")
    return lines


def function_lines(path, fragment):
    """The lines of the definition whose first line contains `fragment` in `path`, with the
    comment and template lines directly above it, as written."""
    source = root() / path
    if not source.is_file():
        raise ListingError(f"{path}: no such file")
    text = source.read_text()
    try:
        first, last = cpp_scan.find_definition(text, fragment)
    except cpp_scan.ScanError as why:
        raise ListingError(f"{path}: {why}") from None
    lines = text.split("\n")
    while first > 0:  # what introduces the definition: its comment and template header
        above = lines[first - 1].lstrip()
        if above.startswith("//"):
            first -= 1
        elif (start := _template_start(lines, first - 1)) is not None:
            first = start
        else:
            break
    # A walkthrough source's region markers are tool markup, not part of the function.
    return [(number + 1, lines[number]) for number in range(first, last + 1)
            if not MARKER.search(lines[number])]


def _template_start(lines, end):
    """The index of the `template <` line whose parameter list closes at the end of line
    `end` (one line, or a few), or None when line `end` does not end a template header."""
    for start in range(end, max(end - 6, -1), -1):
        if TEMPLATE.match(lines[start]):
            header = " ".join(lines[start:end + 1])
            depth = 0
            for i, c in enumerate(header[header.index("<"):]):
                depth += {"<": 1, ">": -1}.get(c, 0)
                if depth == 0:
                    rest = header[header.index("<") + i + 1:].split("//")[0]
                    return start if not rest.strip() else None  # `template <class T> int x;` is not one
            return None
        if not lines[start].strip() or lines[start].lstrip().startswith("//"):
            return None
    return None


def _lesson(path, numbered_lines):
    """Numbered lines as a reader should study them: tracing lines left out, dedented."""
    kept = []
    for number, line in numbered_lines:
        if TRACING.match(line):
            if not line.rstrip().endswith(";"):
                raise ListingError(f"{path}:{number}: a tracing call must be one statement on one line")
            continue
        kept.append(line)
    return textwrap.dedent("\n".join(kept)).strip("\n")


def lesson_code(path, region):
    """The region's code as a reader should study it: tracing lines left out, dedented."""
    return _lesson(path, region_lines(path, region))


def function_code(path, fragment):
    """The function's listing (see function_lines), tracing lines left out, dedented."""
    return _lesson(path, function_lines(path, fragment))


def _emit(text):
    import cog  # provided by cogapp while it runs a generator
    cog.outl(text)


def listing(path, region):
    """Writes the fenced listing of `region` of `path` (for a cog block)."""
    language = LANGUAGES.get(pathlib.Path(path).suffix, "")
    _emit(f"```{language}\n{lesson_code(path, region)}\n```")


def function(path, fragment):
    """Writes the fenced listing of the function whose first line contains `fragment` (for a
    cog block)."""
    language = LANGUAGES.get(pathlib.Path(path).suffix, "")
    _emit(f"```{language}\n{function_code(path, fragment)}\n```")


def changes(old_path, old_region, new_path, new_region):
    """Writes a unified diff from one region to another (for a cog block)."""
    old = lesson_code(old_path, old_region).splitlines()
    new = lesson_code(new_path, new_region).splitlines()
    def label(path, region):  # short enough for a listing's width: walkthroughs/ goes
        return f"{str(path).removeprefix('walkthroughs/')} ({region})"
    diff = difflib.unified_diff(old, new, label(old_path, old_region), label(new_path, new_region),
                                lineterm="", n=2)
    _emit("```diff\n" + "\n".join(diff) + "\n```")


def readmes():
    """Every step's README and its details page (details.md, the step's appendix)."""
    steps = root() / "walkthroughs"
    return sorted([*steps.glob("*/README.md"), *steps.glob("*/details.md")])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail if a listing differs from its source")
    mode.add_argument("--write", action="store_true", help="rewrite every listing from its source")
    parser.add_argument("--root", help="the repository root (default: this checkout)")
    parser.add_argument("files", nargs="*", help="pages (default: walkthroughs/*/README.md and walkthroughs/*/details.md)")
    args = parser.parse_args(argv)
    if args.root:
        os.environ[ROOT_ENV] = str(pathlib.Path(args.root).resolve())
    files = [str(f) for f in (args.files or readmes())]
    if not files:
        print("listings: no README to process", file=sys.stderr)
        return 2
    from cogapp import Cog  # a well-kept tool does the block handling

    tools = str(pathlib.Path(__file__).resolve().parent)
    cog_args = ["cog", "-I", tools, "-p", "from listings import listing, function, changes"]
    cog_args += ["--check"] if args.check else ["-r"]
    try:
        status = Cog().main(cog_args + files)
    except ListingError as error:
        print(f"listings: {error}", file=sys.stderr)
        return 1
    if status != 0 and args.check:
        print("listings: a README's listing differs from its compiled source; run tools/listings.py --write",
              file=sys.stderr)
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
