"""The colors example module used the way its users would: import, attribute access,
isinstance, repr, equality, hashing, subclassing from Python, and rebinding attempts that
must fail cleanly. The laziness and thread safety are checked in fresh interpreters."""
import subprocess
import sys
import textwrap

import pytest

import colors


def test_class_attributes_are_instances_of_the_class():
    Color = colors.Color
    for name in ("RED", "GREEN", "BLUE", "DEFAULT"):
        assert isinstance(getattr(Color, name), Color)
    assert Color.RED is Color.RED is colors.Color.RED
    assert colors.is_built()


def test_repr_equality_and_hash():
    Color = colors.Color
    assert repr(Color.RED) == "colors.Color('red')"
    assert Color.RED == Color("red") and Color.RED != Color.GREEN
    assert hash(Color.BLUE) == hash(Color("blue"))
    assert {Color.RED: 1}[Color("red")] == 1
    assert Color.DEFAULT == Color.RED  # COLORS_DEFAULT unset in the test environment
    assert (Color.RED == "red") is False


def test_subclassing_from_python():
    Color = colors.Color

    class Shade(Color):
        def lighter(self):
            return Shade("light " + self.name)

    s = Shade("navy")
    assert isinstance(s, Color) and s.lighter().name == "light navy"
    assert repr(s).endswith("Shade('navy')")
    assert Shade.RED is Color.RED
    Shade.EXTRA = 1  # a Python subclass is an ordinary, mutable class
    assert Shade.EXTRA == 1


@pytest.mark.parametrize("attempt", [
    "Color.RED = Color('pink')",
    "del Color.RED",
    "Color.PURPLE = Color('purple')",
    "setattr(Color, 'GREEN', None)",
])
def test_rebinding_class_attributes_fails_cleanly(attempt):
    Color = colors.Color
    with pytest.raises(TypeError, match="immutable type"):
        exec(attempt, {"Color": Color})
    assert Color.RED == Color("red") and Color.GREEN.name == "green"


def test_instances_are_read_only_and_checked():
    Color = colors.Color
    with pytest.raises(AttributeError):
        Color.RED.name = "pink"
    with pytest.raises(TypeError):
        Color(42)
    with pytest.raises(TypeError):
        Color()


def test_unknown_module_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Colour'"):
        colors.Colour


def run_fresh(code, **env):
    """Runs `code` in a new interpreter (the type is built once per process)."""
    import os
    environment = dict(os.environ, **env)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=60, env=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_type_is_built_on_first_access_not_on_import():
    out = run_fresh("""
        import colors
        before = colors.is_built()
        colors.Color
        print(before, colors.is_built())
    """)
    assert out == "False True"


def test_default_comes_from_python_code_run_while_building():
    assert run_fresh("import colors; print(colors.Color.DEFAULT.name)", COLORS_DEFAULT="teal") == "teal"


def test_many_threads_asking_at_once_get_one_complete_type():
    out = run_fresh("""
        import threading, colors
        start = threading.Barrier(8)
        seen = []
        def ask():
            start.wait()
            C = colors.Color
            seen.append((id(C), isinstance(C.RED, C), C.RED is C.RED, hasattr(C, "DEFAULT")))
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(set(s[0] for s in seen)), all(all(s[1:]) for s in seen), len(seen))
    """)
    assert out == "1 True 8"


def test_each_module_object_has_its_own_color_and_frees_it():
    # Multi-phase init: a second module object from the same spec is a second, isolated
    # module, with its own Color; once nothing refers to it, the collector frees both
    # (module -> state -> Color -> module is a cycle that m_traverse/m_clear let it break).
    out = run_fresh("""
        import gc, importlib.util, weakref, colors
        spec = importlib.util.find_spec("colors")
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        C, D = colors.Color, other.Color
        print(C is not D, isinstance(D.RED, D), not isinstance(D.RED, C))
        gone = weakref.ref(D)
        del other, D
        gc.collect()
        print(gone() is None, isinstance(C.RED, C))
    """)
    assert out == "True True True\nTrue True"


def test_a_sub_interpreter_builds_its_own_color():
    # Each interpreter imports its own colors module and builds its own Color: a sub-
    # interpreter never sees the main interpreter's objects (3.11: shared GIL; 3.12+: the
    # module declares per-interpreter-GIL support).
    out = run_fresh("""
        import os, colors
        try:
            import _interpreters as interpreters         # 3.13+
        except ImportError:
            import _xxsubinterpreters as interpreters    # 3.11, 3.12
        r, w = os.pipe()
        sub = interpreters.create()
        interpreters.run_string(sub, "import os, colors; C = colors.Color; "
                                     f"os.write({w}, f'{{id(C)}} {{isinstance(C.RED, C)}} {{C.RED.name}}'.encode())")
        sub_id, sub_ok, sub_name = os.read(r, 200).decode().split()
        C = colors.Color   # built now, while the sub-interpreter's Color is still alive
        print(sub_ok, sub_name, int(sub_id) != id(C), isinstance(C.RED, C))
        interpreters.destroy(sub)
        print(isinstance(colors.Color.RED, colors.Color))
    """)
    assert out == "True red True True\nTrue"


def test_each_interpreter_counts_its_own_colors_through_module_state():
    # Color's constructor finds its module's state from the type (PyType_GetModuleByDef),
    # also for a Python subclass: each interpreter, and each module object, counts its own.
    out = run_fresh("""
        import os, colors
        try:
            import _interpreters as interpreters         # 3.13+
        except ImportError:
            import _xxsubinterpreters as interpreters    # 3.11, 3.12
        C = colors.Color
        start = colors.made()   # RED, GREEN, BLUE, DEFAULT
        class Shade(C): pass
        C("teal"); Shade("navy")
        r, w = os.pipe()
        sub = interpreters.create()
        interpreters.run_string(sub, "import os, colors; colors.Color('x'); "
                                     f"os.write({w}, str(colors.made()).encode())")
        in_sub = int(os.read(r, 20))
        interpreters.destroy(sub)
        print(start, colors.made(), in_sub)
    """)
    assert out == "4 6 5"
