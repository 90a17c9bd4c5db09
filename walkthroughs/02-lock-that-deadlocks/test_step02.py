"""Step 02 from Python: every scenario, run in a watchdog child by the extension, gets its
predicted verdict, and a deadlock report says who holds what."""
import pytest

import step02

SCENARIOS = {s["name"]: s for s in step02.scenarios()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_verdict_matches_prediction(name):
    outcome = step02.play(name)
    assert outcome["verdict"] == SCENARIOS[name]["predicted"], outcome["summary"]


def test_deadlock_report_names_the_lock_order_inversion():
    outcome = step02.play("call_once_two_threads_deadlock")
    assert outcome["verdict"] == "deadlocked"
    assert "A holds once_flag and waits for GIL" in outcome["detail"]
    assert "B holds GIL and waits for once_flag" in outcome["detail"]


def test_every_scenario_says_what_it_demonstrates():
    assert len(SCENARIOS) == 11
    for s in SCENARIOS.values():
        assert s["demonstrates"] and s["step"] == "02-lock-that-deadlocks"

