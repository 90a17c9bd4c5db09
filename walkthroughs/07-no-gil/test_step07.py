"""Step 07 from Python: every scenario, played in a watchdog child by the extension, gets
its predicted verdict and details: the naive protocol stores twice in SPIN's order, py_once_lock
and the two-stage type hold. These run on the GIL build, and each scenario names the path it
exercises; the free-threaded side is SPIN's."""
import pytest

import step07

SCENARIOS = {s["name"]: s for s in step07.scenarios()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_verdict_matches_prediction(name):
    outcome = step07.play(name)
    assert outcome["verdict"] == SCENARIOS[name]["predicted"], outcome["summary"]


def test_the_naive_protocol_stores_twice():
    outcome = step07.play("gil_cell_protocol_without_gil_stores_twice")
    assert outcome["verdict"] == "wrong result"
    assert "2 stores" in outcome["detail"] and "A returned 1, B returned 2" in outcome["detail"]
    assert "replayed the 10 steps of SPIN's trail in its order" in outcome["detail"]


def test_reentry_names_the_cell():
    outcome = step07.play("py_once_lock_reentry_is_an_error")
    assert "RuntimeError: py_once_lock 'step07.reentrant_palette'" in outcome["detail"]


def test_every_scenario_says_what_it_demonstrates():
    assert list(SCENARIOS) == ["gil_cell_protocol_without_gil_stores_twice", "py_once_lock_step02_race_builds_once",
                               "py_once_lock_reentry_is_an_error", "py_once_lock_failure_one_waiter_retries",
                               "mutual_class_attributes_from_two_threads"]
    for s in SCENARIOS.values():
        assert s["demonstrates"] and s["step"] == "07-no-gil"


def test_every_scenario_names_the_build_path_it_exercises():
    for s in SCENARIOS.values():
        assert s["demonstrates"].startswith("path: "), s["name"]
    mutual = SCENARIOS["mutual_class_attributes_from_two_threads"]["demonstrates"]
    assert "lazy_type's GIL branch" in mutual and "free-threaded protocol runs in step07_ft_protocol_tests" in mutual
