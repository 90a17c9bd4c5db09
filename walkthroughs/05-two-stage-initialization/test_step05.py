"""Step 05 from Python: class attributes that are instances of their class, built in two
stages, raced by real Python threads (ordered by threading.Event, never by sleeping)."""
import gc
import threading

import pytest

import step05


def test_color_red_is_a_color_and_always_the_same_object():
    Color = step05.Color()
    assert isinstance(Color.RED, Color) and isinstance(Color.GREEN, Color)
    assert Color.RED is Color.RED is step05.Color().RED
    assert Color.RED == Color("red") and Color.RED != Color.GREEN
    assert repr(Color.GREEN) == "step05.Color('green')"
    assert Color.DEFAULT_NAME == "red"


def test_a_factory_on_the_computing_thread_gets_the_ready_type_early():
    seen = {}

    def red():
        T = lazy.get()  # re-entrant: ready, but its attributes are not published yet
        seen["has RED"] = hasattr(T, "RED")
        return T("red")

    lazy = step05.LazyType("step05.Early", {"RED": red})
    T = lazy.get()
    assert seen == {"has RED": False}
    assert isinstance(T.RED, T)


def test_racing_python_threads_never_see_missing_attributes_and_losers_are_released():
    a_inside = threading.Event()
    b_done = threading.Event()

    def red():
        me = threading.current_thread().name
        value = lazy.get()(me)  # a Color named after the thread that computed it
        if me == "A":
            a_inside.set()
            assert b_done.wait(30)  # releases the GIL in the middle of stage 2
        return value

    lazy = step05.LazyType("step05.Raced", {"RED": red})
    seen = {}

    def run(name):
        if name == "B":
            assert a_inside.wait(30)
        T = lazy.get()
        seen[name] = (T, hasattr(T, "RED"))
        if name == "B":
            b_done.set()

    gc.collect()
    colors_before = step05.live_colors()
    threads = [threading.Thread(target=run, args=(n,), name=n) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive()

    assert seen["A"][0] is seen["B"][0]
    assert seen["A"][1] and seen["B"][1]  # nobody got the type without RED
    assert lazy.publications == 1
    assert seen["A"][0].RED.name == "B"  # B finished first; its value was published
    del seen
    gc.collect()
    assert step05.live_colors() == colors_before + 1  # B's RED only: A's was released


def test_factory_error_names_class_and_attribute_publishes_nothing_and_retries():
    calls = []

    def red():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("no red paint today")
        return lazy.get()("red")

    lazy = step05.LazyType("step05.Flaky", {"DEFAULT_NAME": lambda: "red", "RED": red})
    with pytest.raises(RuntimeError, match=r"^cannot compute class attribute step05\.Flaky\.RED$") as info:
        lazy.get()
    assert isinstance(info.value.__cause__, ValueError)
    assert lazy.publications == 0
    T = lazy.get()  # the same thread again: a fresh attempt, not a re-entrant call
    assert T.RED.name == "red" and T.DEFAULT_NAME == "red"
    assert lazy.publications == 1


def test_subclassing_from_python_works():
    Color = step05.Color()

    class Shade(Color):
        pass

    s = Shade("navy")
    assert isinstance(s, Color) and s.name == "navy"
    assert Shade.RED is Color.RED


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError):
        step05.LazyType("step05.Bad", {"X": 1})
    Color = step05.Color()
    with pytest.raises(TypeError):
        Color(42)  # the name must be a str


@pytest.mark.parametrize("scenario", step05.scenarios(), ids=lambda s: s["name"])
def test_scenario_verdict_matches_prediction(scenario):
    outcome = step05.play(scenario["name"])
    assert outcome["verdict"] == scenario["predicted"], outcome["summary"]
