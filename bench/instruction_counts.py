"""Count the instructions each fast path executes per call, with valgrind's callgrind, and
print them next to a plain global read; or check/write the table the docs publish.

Instruction counts do not depend on code layout, caches or the other core's load, so unlike
sub-nanosecond timings they are the same on every run of the same binary. Each peer's loop
is counted for K and for 2K iterations; the difference divided by K is one iteration. Two
ways: the read inlined into the loop (a hot accessor, as the caller usually compiles it),
and the read behind an opaque call (an accessor in another translation unit). `nothing`
reads nothing: its loop is subtracted, so "read" is what the read itself costs.

usage: instruction_counts.py BINARY [--calls K] [--write FILE | --check FILE]
"""
import argparse
import difflib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

PEERS = ["nothing", "plain_global", "function_local_static", "std_call_once",
         "pybind11_call_once_and_store", "gil_once_cell_get", "gil_once_cell_get_or_init",
         "gil_once_cell_get_or_try_init", "lazy_type_get", "per_interpreter_cell_get_or_init",
         "per_interpreter_cell_joined"]
WAYS = ["inlined", "opaque"]
KINDS = ["lazy", "eager"]
FIRST_USE = {"gil_once_cell": "`gilonce::gil_once_cell`: a fresh cell, `get_or_init`, destroyed",
             "function_local_static": "a function-local `static`: libstdc++'s `__cxa_guard_acquire`/`release` on a fresh guard",
             "std_call_once": "`std::call_once` on a fresh `std::once_flag`",
             "pybind11_call_once_and_store": "pybind11 `gil_safe_call_once_and_store`, fresh (it releases and retakes the GIL)"}
CREATION_SIZES = [0, 8, 16, 32]
WHAT = {
    "nothing": "nothing: the loop alone (subtracted from the rows below)",
    "plain_global": "a plain global pointer: no laziness at all",
    "function_local_static": "a function-local `static` (the compiler's guard variable)",
    "std_call_once": "`std::call_once` (libstdc++: a TLS callable, then `pthread_once`)",
    "pybind11_call_once_and_store": "pybind11 3.1 `gil_safe_call_once_and_store` (on Python 3.11: without the per-interpreter path it compiles in on 3.12+)",
    "gil_once_cell_get": "`gilonce::gil_once_cell::get`",
    "gil_once_cell_get_or_init": "`gilonce::gil_once_cell::get_or_init`",
    "gil_once_cell_get_or_try_init": "`gilonce::gil_once_cell::get_or_try_init`",
    "lazy_type_get": "`gilonce::lazy_type::get`",
    "per_interpreter_cell_get_or_init": "`gilonce::per_interpreter_cell::get_or_init`, checked (the filling interpreter; no census)",
    "per_interpreter_cell_joined": "`gilonce::per_interpreter_cell::get_or_init`, sole slot (one interpreter joined the census)",
}


def count(binary, calls):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("instruction_counts.py: valgrind is not installed (tools/bootstrap installs it)")
    with tempfile.TemporaryDirectory(prefix="gilonce-callgrind-") as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}",
               binary, str(calls)]
        # Python's string hashes and the heap's layout steer dict probing and allocation: a
        # fixed hash seed, no address randomization and the same small environment (its
        # variables become os.environ, allocated at start-up) make every run count the same.
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent", "PYTHONHASHSEED": "0"}
        setarch = shutil.which("setarch")
        if setarch:
            cmd = [setarch, platform.machine(), "--addr-no-randomize"] + cmd
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if run.returncode != 0:
            sys.exit(f"instruction_counts.py: {' '.join(cmd)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
        totals = {}
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name)) as f:
                text = f.read()
            desc = re.search(r"^desc: Trigger: Client Request: (\S+) (\S+) (\d+)$", text, re.M)
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if desc and total:
                totals[(desc.group(1), desc.group(2), int(desc.group(3)))] = int(total.group(1))
    per_call = {}
    for peer in PEERS:
        for way in WAYS:
            try:
                once, twice = totals[(peer, way, calls)], totals[(peer, way, 2 * calls)]
            except KeyError:
                sys.exit(f"instruction_counts.py: no callgrind dump for {peer} {way} (found: {sorted(totals)})")
            per_call[peer, way] = (twice - once) / calls
    for peer in FIRST_USE:
        try:
            once, twice = totals[(peer, "first_use", calls)], totals[(peer, "first_use", 2 * calls)]
        except KeyError:
            sys.exit(f"instruction_counts.py: no callgrind dump for the first use of {peer}")
        per_call[peer, "first_use"] = (twice - once) / calls
    for kind in KINDS:
        for n in CREATION_SIZES:
            if (kind, "creation", n) not in totals:
                sys.exit(f"instruction_counts.py: no callgrind dump for {kind} creation {n}")
            per_call[kind, n] = totals[kind, "creation", n]
    return per_call


def creation_problems(per_call):
    """Creation must grow linearly with the number of class attributes: the cost per
    attribute from 16 to 32 attributes may not exceed 1.15 times the cost from 8 to 16
    (a cost quadratic in N doubles it; one of 40 instructions per N squared exceeds it)."""
    problems = []
    for kind in KINDS:
        low = (per_call[kind, 16] - per_call[kind, 8]) / 8
        high = (per_call[kind, 32] - per_call[kind, 16]) / 16
        if high > 1.15 * low:
            problems.append(f"{kind} creation is not linear in the attributes: {low:.0f} instructions "
                            f"per attribute from 8 to 16, {high:.0f} from 16 to 32")
    return problems


def tool_versions():
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            return "?"
    gcc = first_line(["g++", "--version"])
    gcc = re.sub(r"^g\+\+ \(Debian [^)]*\) ", "GCC ", gcc)
    return f"{first_line(['valgrind', '--version'])}, {gcc}, {platform.machine()}"


def table(per_call):
    lines = [f"<!-- written by bench/instruction_counts.py --write (tools/bench --write-docs); "
             f"checked by ctest (release preset); {tool_versions()} -->",
             "",
             "<!-- --8<-- [start:fast_path] -->",
             "| peer | inlined: read | inlined: over a plain global | opaque call: read | opaque call: over a plain global |",
             "|---|---:|---:|---:|---:|"]
    for peer in PEERS[1:]:
        cells = []
        for way in WAYS:
            read = per_call[peer, way] - per_call["nothing", way]
            floor = per_call["plain_global", way] - per_call["nothing", way]
            cells.append(f"{read:g}")
            cells.append("—" if peer == "plain_global" else f"{read - floor:+g}")
        lines.append(f"| {WHAT[peer]} | " + " | ".join(cells) + " |")
    loops = ", ".join(f"{way} {per_call['nothing', way]:g}" for way in WAYS)
    lines += ["", f"Instructions per iteration of the empty loop, subtracted above: {loops}.",
              "<!-- --8<-- [end:fast_path] -->", ""]
    lines += ["<!-- --8<-- [start:first_use] -->",
              "| warm first use (empty, code hot) | instructions |", "|---|---:|"]
    for peer, what in FIRST_USE.items():
        lines.append(f"| {what} | {per_call[peer, 'first_use']:,.0f} |")
    lines += ["<!-- --8<-- [end:first_use] -->", ""]
    lines += ["<!-- --8<-- [start:creation] -->",
              "| first use of a type with N class attributes (instances of the type) | N = 0 | "
              "per attribute, N = 8 to 16 | per attribute, N = 16 to 32 |",
              "|---|---:|---:|---:|"]
    label = {"lazy": "`gilonce::lazy_type`: a fresh one, `get`",
             "eager": "eager: `PyType_FromSpec`, instances written into the dict"}
    for kind in KINDS:
        low = (per_call[kind, 16] - per_call[kind, 8]) / 8
        high = (per_call[kind, 32] - per_call[kind, 16]) / 16
        lines.append(f"| {label[kind]} | {per_call[kind, 0]:,} | {low:,.0f} | {high:,.0f} |")
    lines.append("<!-- --8<-- [end:creation] -->")
    return "\n".join(lines) + "\n"


def compare(published, fresh):
    """The fast-path section must be equal: it counts a few instructions of straight code.
    The first-use sections run CPython's allocator and dict code, whose paths depend a
    little on the heap's layout: each count within 3% (the run's environment is fixed)."""
    def split(text):
        fast, rest, inside = [], [], False
        for line in text.splitlines():
            if "[start:fast_path]" in line:
                inside = True
            (fast if inside else rest).append(line)
            if "[end:fast_path]" in line:
                inside = False
        return fast, rest
    (fast_a, rest_a), (fast_b, rest_b) = split(published), split(fresh)
    problems = []
    if fast_a != fast_b:
        problems.append("the fast-path table changed")
    numbers = lambda lines: [int(n.replace(",", "")) for line in lines
                             for n in re.findall(r"\| ([\d,]+)(?= )", line)]
    label = lambda lines: [re.sub(r"\| [\d,]+(?= )", "| #", line) for line in lines if not line.startswith("<!-- written")]
    a, b = numbers(rest_a), numbers(rest_b)
    if label(rest_a) != label(rest_b) or len(a) != len(b):
        problems.append("the first-use tables changed shape")
    elif any(abs(x - y) > 0.03 * max(x, y) for x, y in zip(a, b)):
        problems.append("a first-use count moved by more than 3%")
    if published.splitlines()[:1] != fresh.splitlines()[:1]:
        problems.append("the tools' versions changed")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--calls", type=int, default=1000)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="write the table the docs include")
    group.add_argument("--check", metavar="FILE", help="fail if FILE differs from a fresh count")
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    per_call = count(args.binary, args.calls)
    text = table(per_call)
    problems = creation_problems(per_call)
    if problems:
        print(text, end="")
        sys.exit("\n".join(problems))
    if args.write:
        try:
            with open(args.write, "w") as f:
                f.write(text)
        except OSError as e:
            sys.exit(f"instruction_counts.py: cannot write the table: {e}")
        print(f"wrote {args.write}")
    elif args.check:
        try:
            with open(args.check) as f:
                published = f.read()
        except OSError as e:
            sys.exit(f"instruction_counts.py: cannot read the published table: {e}")
        problems = compare(published, text)
        if problems:
            diff = "".join(difflib.unified_diff(published.splitlines(True), text.splitlines(True),
                                                args.check, "fresh count"))
            sys.exit("the published instruction counts differ from a fresh count ("
                     + "; ".join(problems) + "); run tools/bench --write-docs and review:\n" + diff)
        print(f"ok: {args.check} agrees with a fresh count")
    print(text, end="")


if __name__ == "__main__":
    main()
