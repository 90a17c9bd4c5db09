"""Checks one Promela model of models/ with SPIN, exhaustively, and says whether it holds.

Two passes, each a pan verifier compiled from `spin -a`:
- safety: gcc -DSAFETY -DNOCLAIM (assertions and invalid end states, i.e. deadlocks; the
  LTL claim left out, since a claim turns the end-state check off), run as `pan -m DEPTH`;
- liveness, when the model has an `ltl` formula: gcc without -DSAFETY, run as
  `pan -a -f -m DEPTH` (acceptance cycles under weak fairness; -DNFAIR=4 lets -f cover up to
  24 processes). An LTL formula rather than
  -DNP and progress labels: the property ("every call returns") reads as one line.
Exits 0 only when every pass found no error and searched the whole state space (not cut
by the depth bound or by memory), or, with --expect-violation, when the safety pass found
an assertion violation and wrote its trail. Prints states stored and matched, transitions,
depth, memory and time for each pass.

usage: run_spin.py MODEL [--expect-violation] [--define NAME[=VALUE]]... [--work-dir DIR]
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

FIELDS = {
    "errors": r"errors: (\d+)",
    "stored": r"([\d.e+]+) states, stored",
    "matched": r"([\d.e+]+) states, matched",
    "transitions": r"([\d.e+]+) transitions",
    "depth": r"depth reached (\d+)",
    "memory_mb": r"([\d.]+)\s+total actual memory usage",
    "seconds": r"elapsed time ([\d.e+]+) seconds",
}
TRUNCATED = ["max search depth too small", "out of memory", "reached -DMEMLIM bound",
             "Search not completed"]


def parse(output):
    """The numbers pan printed, and why the search was cut short, if it was."""
    found = {k: (m.group(1) if (m := re.search(p, output)) else None) for k, p in FIELDS.items()}
    found["truncated"] = [t for t in TRUNCATED if t in output]
    found["assertion"] = "assertion violated" in output
    found["invalid_end"] = "invalid end state" in output
    found["acceptance"] = "acceptance cycle" in output and "errors: 0" not in output
    return found


def passes(model_text, depth, expect_violation=False):
    """The pan passes for a model: (name, gcc flags, pan flags), safety first."""
    found = [("safety", ["-DSAFETY", "-DNOCLAIM"], [f"-m{depth}"])]
    if re.search(r"^\s*ltl\s+\w+", model_text, re.M) and not expect_violation:
        found.append(("liveness", ["-DNFAIR=4"], ["-a", "-f", f"-m{depth}"]))  # -f for up to 24 processes
    return found


def run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def check(model, defines, work, depth, memlim, expect_violation):
    local = work / model.name          # pan writes the trail next to the model it was given
    shutil.copyfile(model, local)
    flags = [f"-D{d}" for d in defines]
    code, out = run(["spin", *flags, "-a", local.name], work)
    if code != 0 or not (work / "pan.c").exists() or "Error" in out:
        print(out)
        print(f"FAIL: spin -a {model.name}")
        return False
    ok = True
    for name, cflags, runflags in passes(model.read_text(), depth, expect_violation):
        binary = f"pan_{name}"
        code, out = run(["gcc", "-O2", f"-DMEMLIM={memlim}", *cflags, "-o", binary, "pan.c"], work)
        if code != 0:
            print(out)
            print(f"FAIL: gcc {binary}")
            return False
        code, out = run([f"./{binary}", *runflags], work)
        (work / f"{binary}.out").write_text(out)
        r = parse(out)
        print(f"{model.name} {' '.join(flags)} {name} (pan {' '.join(runflags)}): "
              f"{r['stored']} states stored, {r['matched']} matched, {r['transitions']} transitions, "
              f"depth {r['depth']}, {r['memory_mb']} MB, {r['seconds']} s, errors {r['errors']}")
        trail = work / f"{local.name}.trail"
        if expect_violation:
            if r["assertion"] and trail.exists():
                print(f"ok: the expected assertion violation, trail in {trail}")
                print("\n".join(l for l in out.splitlines() if l.startswith("pan:1:")))
            else:
                print(f"FAIL: expected an assertion violation with a trail\n{out}")
                ok = False
            continue
        if r["errors"] is None:
            print(out)
            print(f"FAIL: {name}: pan did not report a search")
            ok = False
        elif r["errors"] != "0":
            print(out)
            print(f"FAIL: {name}: {r['errors']} error(s); trail in {trail}" +
                  (" (replay: spin -t -p " + local.name + ")" if trail.exists() else ""))
            ok = False
        elif r["truncated"]:
            print(out)
            print(f"FAIL: {name}: search incomplete ({'; '.join(r['truncated'])})")
            ok = False
        else:
            print(f"ok: {name}: no errors, complete search")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=pathlib.Path)
    parser.add_argument("--expect-violation", action="store_true",
                        help="succeed only if SPIN finds an assertion violation with a trail")
    parser.add_argument("--define", "-D", action="append", default=[], help="passed to spin as -DNAME")
    parser.add_argument("--work-dir", type=pathlib.Path, help="where spin and pan write (default: a temp dir)")
    parser.add_argument("--depth", type=int, default=100000, help="pan -m (default 100000)")
    parser.add_argument("--memlim", type=int, default=2048, help="pan's memory bound in MB (default 2048)")
    args = parser.parse_args(argv)
    if shutil.which("spin") is None:
        parser.exit(2, "run_spin.py: spin is not installed (tools/bootstrap installs it)\n")
    model = args.model.resolve()
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        ok = check(model, args.define, args.work_dir.resolve(), args.depth, args.memlim, args.expect_violation)
    else:
        with tempfile.TemporaryDirectory(prefix="gilonce-spin-") as tmp:
            ok = check(model, args.define, pathlib.Path(tmp), args.depth, args.memlim, args.expect_violation)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
