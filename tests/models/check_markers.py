"""Drift check between each Promela model and the header it describes: every label of the
model (a process step, named after a code line) must appear in the header as a
`// SPIN: <label>` marker comment on that line. A step the model repeats (Promela labels are
unique: detach, detach_2, detach_3) has the marker of its first name (`// SPIN: detach` on
each of those lines). Labels SPIN gives a meaning to (end..., progress..., accept...) and
labels for Python's side (py_...) have no marker.

usage: check_markers.py [--root DIR] [MODEL=HEADER ...]
Without MODEL=HEADER pairs, checks the table below. Exits 1 naming every label without a
marker (and a header that does not exist), 0 when every label has its marker.
"""
import argparse
import pathlib
import re
import sys

# model (under models/) -> the header it describes (under reference/include/gilonce/)
MODELS = {
    "models/py_once_lock.pml": "reference/include/gilonce/py_once_lock.hpp",
    "models/two_stage_type.pml": "reference/include/gilonce/lazy_type.hpp",
}
NO_MARKER = re.compile(r"^(end|progress|accept|py_)")
LABEL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(?!:)", re.M)
MARKER = re.compile(r"//\s*SPIN:\s*([A-Za-z_][A-Za-z0-9_]*)")
REPEAT = re.compile(r"_\d+$")  # detach_2: the second detach of the model


def labels(model_text):
    """The model's labels, in order, comments removed first."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), model_text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    found = [m.group(1) for m in LABEL.finditer(text)]
    return [l for l in dict.fromkeys(found) if not NO_MARKER.match(l)]


def missing(model_text, header_text):
    """The labels of the model with no `// SPIN: label` marker in the header."""
    marked = set(MARKER.findall(header_text))
    return [l for l in labels(model_text) if REPEAT.sub("", l) not in marked]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Every model label has a // SPIN: marker in its header.")
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parents[2])
    parser.add_argument("pairs", nargs="*", metavar="MODEL=HEADER")
    args = parser.parse_args(argv)
    table = dict(p.split("=", 1) for p in args.pairs) if args.pairs else MODELS
    failed = False
    for model, header in table.items():
        model_path, header_path = args.root / model, args.root / header
        if not header_path.exists():
            print(f"FAIL: {model}: its header {header} does not exist")
            failed = True
            continue
        lacking = missing(model_path.read_text(), header_path.read_text())
        if lacking:
            print(f"FAIL: {model}: {len(lacking)} label(s) without a `// SPIN: <label>` marker in {header}: "
                  + ", ".join(lacking))
            failed = True
        else:
            print(f"ok: {model}: all {len(labels(model_path.read_text()))} labels are marked in {header}")
        steps = {REPEAT.sub("", l) for l in labels(model_path.read_text())}
        stale = sorted(set(MARKER.findall(header_path.read_text())) - steps)
        if stale:  # not a failure: the header may mark more than the model checks
            print(f"note: {header}: marker(s) naming no step of {model}: {', '.join(stale)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
