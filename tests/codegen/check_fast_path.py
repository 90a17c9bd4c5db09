"""Reads the machine code of the probes in fast_path_probe.cpp (gil_once_cell::get,
get_or_init and get_or_try_init, lazy_type::get, per_interpreter_cell::get_or_init's sole
slot, the path while one interpreter has joined the census, and py_once_lock's get,
get_or_init and get_or_try_init, whose acquire load is a plain load on x86-64) and checks
that each path taken once the value exists is a load and a branch: the instructions up to
the first `ret` contain no lock prefix, no atomic exchange, no %fs (thread-local) access
and no call, at most 6 of them; and, compared with the compiler's own guard for a
function-local static compiled in the same file, no more memory reads and no more
conditional branches (one of each).

usage: check_fast_path.py OBJECT_FILE"""
import re
import subprocess
import sys

SYMBOLS = ["gilonce_fast_path_probe", "gilonce_get_probe", "gilonce_get_or_try_init_probe",
           "gilonce_lazy_type_fast_path_probe", "gilonce_per_interpreter_sole_probe",
           "gilonce_py_once_lock_get_probe", "gilonce_py_once_lock_fast_path_probe",
           "gilonce_py_once_lock_get_or_try_init_probe"]
STATIC_PEER = "gilonce_function_local_static_probe"
PLAIN_PEER = "gilonce_plain_global_probe"
MEMORY_READ = re.compile(r"^(?!lea)\S+\s+.*\(")  # an operand in memory, except lea's address
BRANCH = re.compile(r"^j(?!mp)\w+\s")
# Every instruction on a fast path must be one of these: loads, compares, address
# arithmetic, a conditional branch or move (GCC 16 compiles `get` branch-free, with cmove),
# the return. Anything else (a fence, an atomic, a call or
# a jump into other code, an instruction this list does not know) fails the check.
ALLOWED = re.compile(r"^(mov[a-z]*|cmov[a-z]+|cmp[bwlq]?|test[bwlq]?|lea[lq]?|xor[lq]?|j(?!mp)[a-z]+|retq?|endbr64|nop[wl]?)\b")
FORBIDDEN = [(re.compile(r"\block\b"), "a lock prefix (atomic read-modify-write)"),
             (re.compile(r"\bxchg\b.*\("), "an exchange with memory (implicitly locked)"),
             (re.compile(r"%fs:"), "a thread-local access"),
             (re.compile(r"\bcallq?\b"), "a call")]


def fast_path(obj, symbol):
    """The instructions of `symbol` up to its first ret, or None if it is not in `obj`."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "att",
                          f"--disassemble={symbol}", obj],
                         capture_output=True, text=True, check=True).stdout
    body = [line.split(":", 1)[1].strip() for line in out.splitlines()
            if re.match(r"^\s+[0-9a-f]+:\s", line)]
    if not body:
        return None
    fast = []
    for insn in body:
        fast.append(insn)
        if insn.startswith("ret"):
            break
    return fast


def shape(fast):
    return (sum(bool(MEMORY_READ.match(i)) for i in fast), sum(bool(BRANCH.match(i)) for i in fast))


def check(obj, symbol, peer_shape):
    fast = fast_path(obj, symbol)
    if fast is None:
        return [f"{symbol} not found in {obj}"]
    reads, branches = shape(fast)
    print(f"{symbol} fast path ({reads} memory read, {branches} conditional branch):\n  " + "\n  ".join(fast))
    problems = [f"{symbol}: {why}: {insn}" for insn in fast for rx, why in FORBIDDEN if rx.search(insn)]
    problems += [f"{symbol}: not a load, compare, branch or return: {insn}" for insn in fast
                 if not ALLOWED.match(insn)]
    if len(fast) > 6:
        problems.append(f"{symbol}: {len(fast)} instructions before the first ret (at most 6 expected)")
    if not fast[-1].startswith("ret"):
        problems.append(f"{symbol}: no ret found: the fast path is not a straight line")
    if reads > peer_shape[0] or branches > peer_shape[1]:
        problems.append(f"{symbol}: {reads} memory reads and {branches} branches, more than a "
                        f"function-local static's {peer_shape[0]} and {peer_shape[1]}")
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    peers = {}
    for peer in (PLAIN_PEER, STATIC_PEER):
        fast = fast_path(sys.argv[1], peer)
        if fast is None:
            sys.exit(f"{peer} not found in {sys.argv[1]}")
        peers[peer] = shape(fast)
        print(f"peer {peer} ({peers[peer][0]} memory read, {peers[peer][1]} conditional branch):\n  "
              + "\n  ".join(fast))
    if peers[STATIC_PEER] != (1, 1) or peers[PLAIN_PEER] != (1, 0):
        sys.exit(f"the peers do not compile as expected (static {peers[STATIC_PEER]}, plain "
                 f"{peers[PLAIN_PEER]}; expected (1, 1) and (1, 0)): the comparison means nothing")
    problems = [p for symbol in SYMBOLS for p in check(sys.argv[1], symbol, peers[STATIC_PEER])]
    if problems:
        sys.exit("fast path contract broken:\n  " + "\n  ".join(problems))
    print("ok: each fast path is one load and one branch, as a function-local static's guard")


if __name__ == "__main__":
    main()
