"""Two extension modules built from the same gilonce headers share nothing.

two_ext_joined calls gilonce::join_interpreter from Py_mod_exec; two_ext_plain never does.
Both are built with default visibility, as setuptools builds extensions. Were the headers'
process-wide state (the census, the computation counter whose address names the per-interpreter
table) emitted as STB_GNU_UNIQUE symbols, the dynamic loader would merge it across the two
RTLD_LOCAL modules: two_ext_plain's cell would then read through two_ext_joined's census, and a
sub-interpreter that imported only two_ext_plain would be handed the main interpreter's value.
"""
import os
import subprocess
import sys

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


SCENARIO = """
import two_ext_joined, two_ext_plain
assert two_ext_joined.once() == two_ext_plain.once() == 1
main_joined = two_ext_joined.made_in()   # main joined two_ext_joined's census
main_plain = two_ext_plain.made_in()
sub_id, sub_plain = two_ext_plain.made_in_new_interpreter()
print(main_joined, main_plain, sub_id, sub_plain)
"""


def test_sub_interpreter_that_imported_only_the_plain_module_reads_its_own_value():
    # A fresh process: the two modules, and nothing else of gilonce, in one python.
    out = subprocess.run([sys.executable, "-c", SCENARIO], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.dirname(p) for p in MODULES)))
    main_joined, main_plain, sub_id, sub_plain = map(int, out.stdout.split())
    print(f"main reads {main_joined} (joined) and {main_plain} (plain); sub-interpreter {sub_id} reads {sub_plain}")
    assert (main_joined, main_plain) == (0, 0)
    assert sub_id != 0
    assert sub_plain == sub_id, f"the sub-interpreter got interpreter {sub_plain}'s value"
