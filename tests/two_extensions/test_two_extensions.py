"""Two extension modules built from the same gilonce headers share nothing.

two_ext_joined calls gilonce::join_interpreter from Py_mod_exec; two_ext_plain never does.
Both are built with default visibility, as setuptools builds extensions. Were the headers'
process-wide state (the census, the computation counter) emitted as STB_GNU_UNIQUE symbols,
the dynamic loader would merge it across the two RTLD_LOCAL modules; and were the functions
that read it exported, a module loaded with RTLD_GLOBAL would lend them to the other, and its
state with them. Either way two_ext_plain's cell would read through two_ext_joined's census,
and a sub-interpreter that imported only two_ext_plain would be handed the main interpreter's
value. The scenario runs with both loader flags.
"""
import os
import subprocess
import sys

import pytest

MODULES = os.environ["TWO_EXT_MODULES"].split(":")


def dynamic_symbols(path):
    """(binding, type, demangled name) of each symbol the module exports or imports."""
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", "--demangle", path],
                         check=True, capture_output=True, text=True).stdout
    symbols = []
    for line in out.splitlines():
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[0].endswith(":") and fields[6] != "UND":
            symbols.append((fields[4], fields[3], fields[7]))
    return symbols


def test_built_with_default_visibility_and_no_gilonce_state_exported():
    for path in MODULES:
        symbols = dynamic_symbols(path)
        gilonce = [s for s in symbols if "gilonce::" in s[2]]
        # Default visibility: the headers' inline functions are exported, as setuptools leaves them.
        assert any(kind == "FUNC" for _, kind, _ in gilonce), (path, "built with hidden visibility?")
        unique = [s for s in symbols if s[0] == "UNIQUE"]
        assert unique == [], (path, unique)
        # Variables: all private. (vtables and type_info are read-only, merging them is harmless.)
        state = [s for s in gilonce if s[1] in ("OBJECT", "TLS") and not s[2].startswith(("vtable for", "typeinfo"))]
        assert state == [], (path, state)
        # Nor any function that reads the census or the tables: none could be lent to another
        # module. (The other headers keep no state outside their objects: see the re-entry test.)
        readers = [s for s in gilonce if any(word in s[2] for word in (
            "per_interpreter", "join_interpreter", "census", "interpreter_table", "cell_slots"))]
        assert readers == [], (path, readers)


SCENARIO = """
import os, sys
if sys.argv[1] == "global":  # as torch once did, and ctypes.CDLL(..., RTLD_GLOBAL) does
    sys.setdlopenflags(os.RTLD_GLOBAL | os.RTLD_NOW)
import two_ext_joined, two_ext_plain
assert two_ext_joined.once() == two_ext_plain.once() == 1
main_joined = two_ext_joined.made_in()   # main joined two_ext_joined's census
main_plain = two_ext_plain.made_in()
sub_id, sub_plain = two_ext_plain.made_in_new_interpreter()
print(main_joined, main_plain, sub_id, sub_plain)
"""


REENTRY = """
import faulthandler, os, sys
faulthandler.dump_traceback_later(20, exit=True)  # a thread still blocked then: its stack, and exit
if sys.argv[1] == "global":
    sys.setdlopenflags(os.RTLD_GLOBAL | os.RTLD_NOW)
import two_ext_joined, two_ext_plain
for module in (two_ext_joined, two_ext_plain):
    assert module.other() == 6
    for message in module.reenter():
        print(message, flush=True)
"""


@pytest.mark.parametrize("loader_flags", ["local", "global"])
def test_reentry_into_either_modules_cells_is_an_error_not_a_self_deadlock_or_a_stack_overflow(loader_flags):
    out = subprocess.run([sys.executable, "-c", REENTRY, loader_flags], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.dirname(p) for p in MODULES)))
    assert "Timeout" not in out.stderr, "a re-entrant initializer was not refused and waits for its own cell:\n" + out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("'")[1] for line in lines] == [
        f"two_ext_{name}.reentered_{kind}" for name in ("joined", "plain") for kind in ("lock", "cell")], lines
    assert all("re-entrant initialization" in line for line in lines), lines


@pytest.mark.parametrize("loader_flags", ["local", "global"])
def test_sub_interpreter_that_imported_only_the_plain_module_reads_its_own_value(loader_flags):
    # A fresh process: the two modules, and nothing else of gilonce, in one python.
    out = subprocess.run([sys.executable, "-c", SCENARIO, loader_flags], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.dirname(p) for p in MODULES)))
    main_joined, main_plain, sub_id, sub_plain = map(int, out.stdout.split())
    print(f"main reads {main_joined} (joined) and {main_plain} (plain); sub-interpreter {sub_id} reads {sub_plain}")
    assert (main_joined, main_plain) == (0, 0)
    assert sub_id != 0
    assert sub_plain == sub_id, f"the sub-interpreter got interpreter {sub_plain}'s value"
