"""Turns SPIN's counterexample for models/gil_cell_without_gil.pml into a walkthrough trace
(schema gilonce-trace/1, walkthroughs/runner/trace.schema.json), so that
walkthroughs/runner/mermaid.py draws it like any observed scenario: one event per step of
the trail, named by the model's label for that line, on the thread that took it.
t_ms is the trail's step number, not a time: SPIN's steps have no duration.

usage: trail_to_trace.py [--model PML] [--work-dir DIR] [--output REPORT.json] [--mermaid FILE]
"""
import argparse
import contextlib
import json
import pathlib
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODEL = ROOT / "models" / "gil_cell_without_gil.pml"
sys.path.insert(0, str(HERE))
import run_spin  # noqa: E402

STEP = re.compile(r"^\s*(\d+):\s+proc\s+(\d+) \((\w+):\d+\) \S+?:(\d+) \(state \d+\)\s+\[(.*)\]$")
LABEL = re.compile(r"^\s*([A-Za-z_]\w*)\s*:(?!:)")
CELL = "the cell (no GIL)"


def labels_by_line(model_text):
    """For each line of the model, the label of the step it belongs to (the last label above it)."""
    current, out = None, {}
    for number, line in enumerate(model_text.splitlines(), 1):
        if m := LABEL.match(line):
            current = m.group(1)
        if line.startswith(("proctype", "init")):
            current = None
        out[number] = current
    return out


def event(step, thread, label, statement, stores):
    """The trace event for one step of the trail, or None for a step not worth drawing."""
    ev = {"t_ms": float(step), "thread": thread, "resource": "", "kind": "note"}
    on_cell = {**ev, "resource": CELL}  # a note on a step that reads or writes the cell: its lifeline
    if label == "fast_check" and statement == "else":
        return {**on_cell, "text": "fast_check: full_ is false, so the slow path"}
    if label == "run_init":
        return {**ev, "text": "run_init: the initializer runs, nothing held"}
    if label == "store_or_release" and statement == "(!(full_))":
        return {**ev, "kind": "passes", "resource": CELL,
                "text": "store_or_release: sees full_ false at the re-check"}
    if label == "store" and statement.startswith("value ="):
        return {**on_cell, "text": f"store: writes the value (store {stores})"}
    if label == "store" and statement.startswith("full_ ="):
        return {**on_cell, "text": "store: full_ = true"}
    if label == "store" and statement.startswith("assert") and stores > 1:
        return {**ev, "text": f"assert(stores == 1) fails: {stores} stores"}
    return None


def trace(model, work):
    """The scenario dict for the model's counterexample (found first, with run_spin)."""
    if not (work / f"{model.name}.trail").exists():
        with contextlib.redirect_stdout(sys.stderr):  # standard output is for the report
            found = run_spin.check(model, [], work, 100000, 2048, expect_violation=True)
        if not found:
            raise SystemExit("trail_to_trace.py: SPIN found no counterexample")
    replay = subprocess.run(["spin", "-t", "-p", model.name], cwd=work, capture_output=True, text=True)
    lines = labels_by_line(model.read_text())
    names, events, stores, failed_at = {}, [], 0, None
    for raw in replay.stdout.splitlines():
        m = STEP.match(raw)
        if not m or m.group(3) != "thread":
            continue
        step, pid, line, statement = int(m.group(1)), m.group(2), int(m.group(4)), m.group(5)
        if pid not in names:
            names[pid] = "AB"[len(names)]  # threads named in the order they first act
        thread = names[pid]
        if statement.startswith("value ="):
            stores += 1
        if statement.startswith("assert((stores==1))") and stores > 1:
            failed_at = step
        if e := event(step, thread, lines.get(line), statement, stores):
            events.append(e)
    seconds = float(re.search(r"elapsed time ([\d.e+]+)", (work / "pan_safety.out").read_text()).group(1)) \
        if (work / "pan_safety.out").exists() else 0.0
    detail = (f"SPIN's trail: {' and '.join(sorted(names.values()))} both see full_ false at the re-check "
              f"and both store ({stores} stores); assert(stores == 1) fails at step {failed_at}")
    return {
        "step": "13-free-threaded-models",
        "name": "gil_cell_without_gil",
        "demonstrates": "gil_once_cell's protocol without a GIL (a free-threaded build): "
                        "check full_, run the initializer, store if still empty, is no longer one step",
        "predicted": "wrong result",
        "predicted_details": ["both store", f"{max(stores, 2)} stores"],
        "observed": "wrong result" if failed_at else "finished",
        "as_predicted": failed_at is not None,
        "seconds": seconds,
        "signal": 0,
        "detail": detail,
        "summary": f"wrong result: {detail}" if failed_at else "finished: SPIN found no violation",
        "events": events,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=pathlib.Path, default=MODEL)
    parser.add_argument("--work-dir", type=pathlib.Path)
    parser.add_argument("--output", type=pathlib.Path, help="the report (default: standard output)")
    parser.add_argument("--mermaid", type=pathlib.Path, help="also write the Mermaid diagram here")
    args = parser.parse_args(argv)
    model = args.model.resolve()
    with tempfile.TemporaryDirectory(prefix="gilonce-trail-") as tmp:
        work = args.work_dir.resolve() if args.work_dir else pathlib.Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        scenario = trace(model, work)
    report = {"schema": "gilonce-trace/1", "scenarios": [scenario],
              "summary": {"played": 1, "as_predicted": int(scenario["as_predicted"]),
                          "not_as_predicted": int(not scenario["as_predicted"])}}
    text = json.dumps(report, indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    if args.mermaid:
        sys.path.insert(0, str(ROOT / "walkthroughs" / "runner"))
        import mermaid
        args.mermaid.write_text(mermaid.render(scenario))
    return 0 if scenario["as_predicted"] else 1


if __name__ == "__main__":
    sys.exit(main())
