"""Step 01 from Python: the unsound lazy type works for a single well-behaved caller, and
its scenarios (run in a watchdog child by the extension) show the bug."""
import pytest

import step01


def test_single_caller_gets_a_usable_type():
    Color = step01.Color()
    assert Color.__name__ == "Color"
    assert Color.DEFAULT_NAME == "red"
    assert isinstance(Color(), Color)
    assert step01.Color() is Color


@pytest.mark.parametrize("name", [s["name"] for s in step01.scenarios()])
def test_scenario_verdict_matches_prediction(name):
    predicted = {s["name"]: s["predicted"] for s in step01.scenarios()}[name]
    outcome = step01.play(name)
    assert outcome["verdict"] == predicted, outcome["summary"]


def test_second_thread_sees_unready_type_names_the_flag():
    outcome = step01.play("second_thread_sees_unready_type")
    assert "Py_TPFLAGS_READY unset" in outcome["detail"]
    threads = {e["thread"] for e in outcome["events"]}
    assert {"A", "B"} <= threads


def test_unknown_scenario_is_a_key_error():
    with pytest.raises(KeyError, match="no scenario named 'nope'"):
        step01.play("nope")
