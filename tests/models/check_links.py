"""Drift check between each Promela model and the code it describes: every step (label) of
the model is linked to one code line of a header, and the linked lines must still be there,
each once, in the order the model takes them. The link lives beside the model, in
`models/<model>.links`, so the shipped headers carry no tool markers; and because the check
reads the code itself, a protocol line deleted, duplicated or moved out of order fails,
where a marker comment would have stayed put.

The links file, line by line (blank lines and lines starting with `#` are ignored):

    header: reference/include/gilonce/detail/once_core.hpp
    function: outcome wait_or_claim(
    detach: hooks.detach();
    lock: std::unique_lock<std::mutex> lock(mutex_);
    see_full: if (seen == full)
    function: void reset_detached(
    lock_2: std::lock_guard<std::mutex> lock(mutex_);

- `header: PATH` (relative to the root) names the header the sections below it read; it may
  change mid-file, and is followed by a `function:` line before any label.
- `function: FRAGMENT` begins a section: FRAGMENT is a literal part of the first line of one
  function definition, occurring exactly once in the header's code (comments do not count).
  The body is that line through its matching closing brace (tools/cpp_scan.py counts braces,
  not those in comments or literals).
- `LABEL: FRAGMENT` links a label of the model to the one line of that body whose code
  (comments removed, runs of whitespace made one space) contains FRAGMENT (whitespace made
  the same way). Within a section the labels are listed in the order of their lines in the
  body; two labels may name the same line (a load that is both a check and a branch).

Every label of the model needs exactly one link, except SPIN's own (end..., progress...,
accept...) and Python's side (py_...), which may have one. A step the model repeats
(Promela labels are unique in a process: detach, detach_2) has a link per label. A link
naming no label of the model is stale, and fails.

usage: check_links.py [--root DIR] [MODEL=LINKS ...]
Without MODEL=LINKS pairs, checks the table below. Prints one `FAIL:` line per problem
(naming the model, the label, the header and what is wrong) and exits 1, or `ok:` lines and
exits 0.
"""
import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))  # the brace scanner tools/listings.py uses too
import cpp_scan  # noqa: E402

# model -> its links file (both under the root)
MODELS = {
    "models/py_once_lock.pml": "models/py_once_lock.links",
    "models/two_stage_type.pml": "models/two_stage_type.links",
}
NO_LINK_NEEDED = re.compile(r"^(end|progress|accept|py_)")
LABEL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(?!:)", re.M)
LINK_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(?!:)\s*(.*?)\s*$")


def all_labels(model_text):
    """Every label of the model, in order, comments removed first."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), model_text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return list(dict.fromkeys(m.group(1) for m in LABEL.finditer(text)))


def labels(model_text):
    """The labels that need a link: all but SPIN's own and Python's side."""
    return [label for label in all_labels(model_text) if not NO_LINK_NEEDED.match(label)]


def squeeze(text):
    """Runs of whitespace made one space, ends stripped: how fragments and code are compared."""
    return " ".join(text.split())


class Section:
    """One `function:` section of a links file: its header, fragment and (label, fragment,
    links-file line) triples, in the order listed."""
    def __init__(self, header, function, line):
        self.header, self.function, self.line, self.links = header, function, line, []


def parse(text, links_name):
    """(sections, problems): the links file read, and what is malformed in it."""
    sections, problems, header = [], [], None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = LINK_LINE.match(line)
        if not m or not m.group(2):
            problems.append(f"{links_name}:{number}: not `header: PATH`, `function: FRAGMENT` "
                            f"or `label: FRAGMENT`: {line}")
            continue
        key, value = m.groups()
        if key == "header":
            header = value
            sections.append(None)  # a header change ends the section before it
        elif key == "function":
            if header is None:
                problems.append(f"{links_name}:{number}: `function:` before any `header:`")
                continue
            sections.append(Section(header, value, number))
        elif not sections or sections[-1] is None:
            problems.append(f"{links_name}:{number}: label `{key}` before any `function:` of its header")
        else:
            sections[-1].links.append((key, value, number))
    sections = [s for s in sections if s is not None]
    problems += [f"{links_name}:{s.line}: function `{s.function}` links no label"
                 for s in sections if not s.links]
    return sections, problems


def check_section(section, header_text):
    """The (label, what is wrong) pairs of one section, checked against its header's text."""
    fail = []
    try:
        first, last = cpp_scan.find_definition(header_text, section.function)
    except cpp_scan.ScanError as why:
        return [(label, f"function `{section.function}`: {why}") for label, _, _ in section.links]
    code, _ = cpp_scan.split(header_text)
    body = [(number + 1, squeeze(code[number])) for number in range(first, last + 1)]
    where = f"function `{section.function}` (lines {first + 1}-{last + 1})"
    latest = None  # (line, label) of the furthest line matched so far in this section
    for label, fragment, _ in section.links:
        wanted = squeeze(fragment)
        lines = [number for number, text in body if wanted in text]
        if not lines:
            fail.append((label, f"deleted: no line of {where} contains `{wanted}`"))
            continue
        if len(lines) > 1:
            fail.append((label, f"ambiguous: lines {', '.join(map(str, lines))} of {where} contain "
                                f"`{wanted}`: make the fragment longer"))
            continue
        if latest and lines[0] < latest[0]:
            fail.append((label, f"swapped: its line {lines[0]} comes before line {latest[0]} of "
                                f"`{latest[1]}`, which the links file lists first (in {where})"))
        else:
            latest = (lines[0], label)
    return fail


def check(root, model, links):
    """The FAIL: lines for one model and its links file, or its one ok: line."""
    model_path, links_path = root / model, root / links
    for name, path in ((model, model_path), (links, links_path)):
        if not path.is_file():
            return [f"FAIL: {model}: {name} does not exist (under {root})"]
    model_text = model_path.read_text()
    sections, problems = parse(links_path.read_text(), links)
    fails = [f"FAIL: {model}: {p}" for p in problems]
    known, needed = set(all_labels(model_text)), labels(model_text)
    linked = {}
    for section in sections:
        for label, _, number in section.links:
            linked.setdefault(label, []).append((section.header, number))
    for label in needed:
        if label not in linked:
            fails.append(f"FAIL: {model}: {label}: no link in {links} (which code line is this step?)")
    for label, places in linked.items():
        if len(places) > 1:
            fails.append(f"FAIL: {model}: {label}: linked {len(places)} times in {links} (lines "
                         + ", ".join(str(n) for _, n in places) + "), need exactly one")
        if label not in known:
            fails.append(f"FAIL: {model}: {label}: {places[0][0]}: stale link ({links}:{places[0][1]}): "
                         "the model has no such label (renamed or removed?)")
    headers = {}
    for section in sections:
        path = root / section.header
        if section.header not in headers:
            headers[section.header] = path.read_text() if path.is_file() else None
        if headers[section.header] is None:
            fails.append(f"FAIL: {model}: function `{section.function}`: {section.header} does not exist "
                         f"({links}:{section.line})")
            continue
        fails += [f"FAIL: {model}: {label}: {section.header}: {what}"
                  for label, what in check_section(section, headers[section.header])]
    if fails:
        return fails
    count = sum(len(s.links) for s in sections)
    return [f"ok: {model}: {count} labels linked to their lines, in order, in {len(sections)} function(s) of "
            + ", ".join(dict.fromkeys(s.header for s in sections))]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Every model step is linked to its code line, in order.")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT)
    parser.add_argument("pairs", nargs="*", metavar="MODEL=LINKS")
    args = parser.parse_args(argv)
    bad = [p for p in args.pairs if "=" not in p]
    if bad:
        parser.error(f"not MODEL=LINKS: {', '.join(bad)}")
    table = dict(p.split("=", 1) for p in args.pairs) if args.pairs else MODELS
    failed = False
    for model, links in table.items():
        for line in check(args.root.resolve(), model, links):
            print(line)
            failed = failed or line.startswith("FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
