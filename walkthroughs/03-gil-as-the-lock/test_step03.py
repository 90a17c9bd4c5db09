"""Step 03 from Python: a type built lazily with the GIL as its only lock, raced by real
Python threads (ordered with threading.Event, never by sleeping), recursed into, and made
to fail."""
import gc
import threading

import pytest

import step03


def test_first_get_builds_a_complete_type_and_later_gets_return_it():
    lazy = step03.LazyType("step03.Plain", {"DEFAULT_NAME": lambda: "red"})
    Color = lazy.get()
    assert Color.__name__ == "Plain" and Color.__module__ == "step03"
    assert Color.DEFAULT_NAME == "red"
    assert isinstance(Color(), Color)
    assert lazy.get() is Color


def test_two_threads_whose_factory_releases_the_gil_share_one_type_and_release_the_other():
    a_inside = threading.Event()
    b_done = threading.Event()
    built = []

    def default_name():
        me = threading.current_thread().name
        built.append(me)
        if me == "A":
            a_inside.set()
            assert b_done.wait(30)  # releases the GIL in the middle of the build
        return me

    lazy = step03.LazyType("step03.Raced", {"DEFAULT_NAME": default_name})
    seen = {}

    def thread_a():
        seen["A"] = lazy.get()

    def thread_b():
        assert a_inside.wait(30)
        seen["B"] = lazy.get()
        b_done.set()

    a = threading.Thread(target=thread_a, name="A")
    b = threading.Thread(target=thread_b, name="B")
    a.start(); b.start()
    a.join(30); b.join(30)
    assert not a.is_alive() and not b.is_alive()

    assert sorted(built) == ["A", "B"]  # built twice: the price of never blocking
    assert seen["A"] is seen["B"]
    assert seen["A"].DEFAULT_NAME == "B"  # the first build to finish was kept
    del seen
    gc.collect()
    raced = [o for o in gc.get_objects() if isinstance(o, type) and o.__qualname__ == "Raced"]
    assert len(raced) == 1  # A's type object was released


def test_factory_asking_for_the_type_gets_a_runtime_error_naming_it_and_a_retry_works():
    recurse = [True]

    def red():
        return lazy.get() if recurse[0] else None

    lazy = step03.LazyType("step03.Recursive", {"RED": red})
    with pytest.raises(RuntimeError, match=r"gil_once_cell 'step03.Recursive': re-entrant initialization"):
        lazy.get()
    recurse[0] = False
    assert lazy.get().RED is None


def test_factory_exception_propagates_and_the_next_get_builds_again():
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("not yet")
        return 42

    lazy = step03.LazyType("step03.Flaky", {"ANSWER": flaky})
    with pytest.raises(ValueError, match="not yet"):
        lazy.get()
    assert lazy.get().ANSWER == 42
    assert len(attempts) == 2


def test_a_type_outlives_the_lazy_type_that_built_it():
    T = step03.LazyType("step03.Orphan", {}).get()  # the LazyType is gone at once
    gc.collect()
    assert repr(T) == "<class 'step03.Orphan'>"
    with pytest.raises(TypeError, match="Orphan"):
        T(1)  # the error message reads the type's name


def test_bad_arguments_are_type_errors():
    with pytest.raises(TypeError):
        step03.LazyType("step03.Bad", {"X": 42})
    with pytest.raises(TypeError):
        step03.LazyType(42, {})


@pytest.mark.parametrize("scenario", step03.scenarios(), ids=lambda s: s["name"])
def test_scenario_verdict_matches_prediction(scenario):
    outcome = step03.play(scenario["name"])
    assert outcome["verdict"] == scenario["predicted"], outcome["summary"]
