"""Step 07: SPIN's counterexample for models/gil_cell_without_gil.pml as the ordered list of
code steps that the scenario gil_cell_protocol_without_gil_stores_twice replays
(gil_cell_without_gil.steps, one line per step: trail step number, thread, step name).
--write regenerates the file from a fresh SPIN run; --check (a ctest, label models: it needs
spin) fails when the checked-in file is not what SPIN's trail says now.

usage: trail_steps.py (--write | --check) [--work-dir DIR]
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODEL = ROOT / "models" / "gil_cell_without_gil.pml"
STEPS = HERE / "gil_cell_without_gil.steps"
sys.path.insert(0, str(ROOT / "tests" / "models"))
import run_spin  # noqa: E402
import trail_to_trace  # noqa: E402

HEADER = """\
# SPIN's counterexample for models/gil_cell_without_gil.pml, as the steps of
# walkthroughs/07-no-gil/unlocked_cell.hpp that replay it, in the trail's order.
# Written by trail_steps.py --write from `spin -t -p`; checked by trail_steps.py --check.
# trail-step thread step (the model's bookkeeping, stores++ and assert(stores == 1), is left out)
"""


def code_step(label, statement):
    """The name of the code step (unlocked_cell.hpp's `step(...)`) for one statement of the trail."""
    if label == "store":
        if statement.startswith("value ="):
            return "store:value"
        if statement.startswith("full_ ="):
            return "store:full_"
        return None  # stores++ and assert(stores == 1): the model's count, not the protocol
    if label in ("fast_check", "run_init", "store_or_release", "py_returned"):
        return label
    return None


def steps_from_trail(work):
    """The trail's code steps, as text (found with run_spin first)."""
    if not run_spin.check(MODEL, [], work, 100000, 2048, expect_violation=True):
        raise SystemExit("trail_steps.py: SPIN found no counterexample")
    replay = subprocess.run(["spin", "-t", "-p", MODEL.name], cwd=work, capture_output=True, text=True, check=True)
    labels = trail_to_trace.labels_by_line(MODEL.read_text())
    names, lines = {}, []
    for raw in replay.stdout.splitlines():
        m = trail_to_trace.STEP.match(raw)
        if not m or m.group(3) != "thread":
            continue
        number, pid, line, statement = int(m.group(1)), m.group(2), int(m.group(4)), m.group(5)
        if pid not in names:
            names[pid] = "AB"[len(names)]  # as trail_to_trace.py: named in the order they first act
        if step := code_step(labels.get(line), statement):
            lines.append(f"{number} {names[pid]} {step}")
    return HEADER + "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    parser.add_argument("--work-dir", type=pathlib.Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gilonce-steps-") as tmp:
        work = args.work_dir.resolve() if args.work_dir else pathlib.Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        text = steps_from_trail(work)
    if args.write:
        STEPS.write_text(text)
        print(f"wrote {STEPS}")
        return 0
    if STEPS.read_text() != text:
        print(f"FAIL: {STEPS.name} is not SPIN's trail any more; run trail_steps.py --write. SPIN's:\n{text}")
        return 1
    print(f"ok: {STEPS.name} is SPIN's trail ({len(text.splitlines()) - HEADER.count(chr(10))} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
