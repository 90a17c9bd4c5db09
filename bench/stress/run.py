"""Run stress_first_use in a child process and say how it ended: passed, failed its checks,
hung, or crashed with a signal, and how long it took. A crash or a hang is reported as one,
never as a bare exit status; a hang is bounded twice (the child's own watchdog per round,
and --hang-after here for the whole run).

usage: run.py [--hang-after S] [--expect-caught] PATH_TO_stress_first_use [ARGS...]

--expect-caught: for --naive runs. Passes only if the checks caught the naive cell and type:
exit status 1 (not a crash, not a hang), divergent objects on every cell line and divergent
objects or incomplete types on every type line.
"""
import argparse
import re
import signal
import subprocess
import sys
import time

HUNG = 3  # stress_first_use's exit status when its watchdog saw a round hang


def caught(output):
    """Why the naive run counts as caught, or None if it does not."""
    cells = [int(n) for n in re.findall(r"^cell \(naive\): .*?: (\d+) divergent", output, re.M)]
    types = [int(d) + int(i) for d, i in
             re.findall(r"^type \(naive\): .*?: (\d+) divergent, (\d+) incomplete", output, re.M)]
    if not cells + types or 0 in cells + types:
        return None
    return f"{len(cells)} cell and {len(types)} type line(s), each with divergent or incomplete results"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hang-after", type=float, default=1800, metavar="S",
                        help="kill the child and call it hung after S seconds (default 1800)")
    parser.add_argument("--expect-caught", action="store_true")
    parser.add_argument("binary")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not 0 < args.hang_after < 1e6:  # also refuses nan and inf
        parser.error("--hang-after must be a positive number of seconds, below 1000000")

    command = [args.binary, *args.args]
    start = time.monotonic()
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=args.hang_after)
    except subprocess.TimeoutExpired as e:
        # (TimeoutExpired carries bytes even when text was asked for.)
        sys.stdout.write(e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout or "")
        sys.stdout.flush()
        sys.stderr.write(e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr or "")
        sys.stderr.flush()
        print(f"run.py: HUNG: no exit after {args.hang_after:g} s; killed")
        return 1
    except OSError as e:
        sys.exit(f"run.py: cannot run {args.binary}: {e}")
    wall = time.monotonic() - start
    sys.stdout.write(child.stdout)
    sys.stdout.flush()  # the child's lines in its order, then its stderr, then the verdict
    sys.stderr.write(child.stderr)
    sys.stderr.flush()

    status = child.returncode
    if status < 0:
        how = f"CRASHED with signal {signal.Signals(-status).name}"
    elif status == HUNG:
        how = "HUNG (the child's watchdog named the round, above)"
    elif status == 2:
        how = "refused its arguments"
    else:
        how = "passed" if status == 0 else "failed its checks"
    print(f"run.py: {' '.join(command)}: {how}, wall {wall:.2f} s")

    if status == 2:
        return 2
    if args.expect_caught:
        why = caught(child.stdout) if status == 1 else None
        print(f"run.py: the naive run was {'caught: ' + why if why else 'NOT caught as it must be'}")
        return 0 if why else 1
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
