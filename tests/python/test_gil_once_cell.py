"""gil_once_cell<py::object> seen from Python: the race it is built for, failure and retry,
and re-entrancy, with real Python threads ordered by threading.Event (never by sleeping)."""
import gc
import threading
import weakref

import pytest

import gilonce_probe


class Marker:
    """A fresh object per initializer run; weak references show when it is released."""

    def __init__(self, built_by):
        self.built_by = built_by


def run_threads(*targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # reported in the main thread
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]


def test_two_initializers_that_release_the_gil_share_one_object_and_release_the_loser():
    cell = gilonce_probe.Cell("shared marker")
    a_inside = threading.Event()
    b_stored = threading.Event()
    runs = []
    losers = []
    results = {}

    def init_a():
        runs.append("A")
        m = Marker("A")
        losers.append(weakref.ref(m))
        a_inside.set()
        assert b_stored.wait(30)  # releases the GIL while A is initializing
        return m

    def thread_a():
        results["A"] = cell.get_or_init(init_a)

    def thread_b():
        assert a_inside.wait(30)
        results["B"] = cell.get_or_init(lambda: runs.append("B") or Marker("B"))
        b_stored.set()

    run_threads(thread_a, thread_b)
    assert sorted(runs) == ["A", "B"]  # the initializer ran twice
    assert results["A"] is results["B"] is cell.get()
    assert cell.get().built_by == "B"  # the first completed write won
    del results
    gc.collect()
    assert losers[0]() is None  # A's object is gone
    # The winner is held by the cell alone: once taken out and dropped, it is gone too.
    winner = weakref.ref(cell.get())
    cell.take()
    gc.collect()
    assert winner() is None


def test_initializer_that_raises_leaves_the_cell_empty_and_the_next_call_retries():
    cell = gilonce_probe.Cell("flaky")

    def fail():
        raise ValueError("not yet")

    with pytest.raises(ValueError, match="not yet"):
        cell.get_or_init(fail)
    assert cell.get() is None
    assert cell.get_or_init(lambda: "ready") == "ready"
    assert cell.get_or_init(fail) == "ready"  # full: the initializer is not called


def test_reentrant_initialization_is_a_runtime_error_naming_the_cell():
    cell = gilonce_probe.Cell("recursive thing")
    with pytest.raises(RuntimeError, match=r"gil_once_cell 'recursive thing': re-entrant"):
        cell.get_or_init(lambda: cell.get_or_init(lambda: 1))
    assert cell.get() is None
    assert cell.get_or_init(lambda: 2) == 2


def test_set_take_and_get():
    cell = gilonce_probe.Cell("manual")
    assert cell.name == "manual"
    assert cell.set("first") is True
    assert cell.set("second") is False
    assert cell.get() == "first"
    assert cell.take() == "first"
    assert cell.get() is None
    assert cell.take() is None


def test_bad_argument_is_a_type_error():
    cell = gilonce_probe.Cell("typed")
    with pytest.raises(TypeError):
        cell.get_or_init(42)
