"""Reads the machine code of the probes in fast_path_probe.cpp (gil_once_cell::get,
get_or_init and get_or_try_init, and lazy_type::get) and checks that each path taken once the value exists is a load and a
branch: the instructions up to the first
`ret` contain no lock prefix, no atomic exchange, no %fs (thread-local) access and no call,
and there are at most 6 of them.

usage: check_fast_path.py OBJECT_FILE"""
import re
import subprocess
import sys

SYMBOLS = ["gilonce_fast_path_probe", "gilonce_get_probe", "gilonce_get_or_try_init_probe",
           "gilonce_lazy_type_fast_path_probe"]
FORBIDDEN = [(re.compile(r"\block\b"), "a lock prefix (atomic read-modify-write)"),
             (re.compile(r"\bxchg\b.*\("), "an exchange with memory (implicitly locked)"),
             (re.compile(r"%fs:"), "a thread-local access"),
             (re.compile(r"\bcall\b"), "a call")]


def check(obj, symbol):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "att",
                          f"--disassemble={symbol}", obj],
                         capture_output=True, text=True, check=True).stdout
    body = [line.split(":", 1)[1].strip() for line in out.splitlines()
            if re.match(r"^\s+[0-9a-f]+:\s", line)]
    if not body:
        return [f"{symbol} not found in {obj}"]
    fast = []
    for insn in body:
        fast.append(insn)
        if insn.startswith("ret"):
            break
    print(f"{symbol} fast path:\n  " + "\n  ".join(fast))
    problems = [f"{symbol}: {why}: {insn}" for insn in fast for rx, why in FORBIDDEN if rx.search(insn)]
    if len(fast) > 6:
        problems.append(f"{symbol}: {len(fast)} instructions before the first ret (at most 6 expected)")
    if not fast[-1].startswith("ret"):
        problems.append(f"{symbol}: no ret found: the fast path is not a straight line")
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    problems = [p for symbol in SYMBOLS for p in check(sys.argv[1], symbol)]
    if problems:
        sys.exit("fast path contract broken:\n  " + "\n  ".join(problems))
    print("ok: a load and a branch")


if __name__ == "__main__":
    main()
