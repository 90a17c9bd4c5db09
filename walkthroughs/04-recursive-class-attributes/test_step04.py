"""Step 04 from Python: the one-stage Color whose class attributes are Colors cannot be
built, and says exactly why; without such attributes it works."""
import pytest

import step04


def test_recursive_color_raises_runtime_error_naming_class_and_attribute():
    with pytest.raises(RuntimeError, match=r"^cannot compute class attribute step04\.Color\.RED$") as info:
        step04.Color()
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert "gil_once_cell 'step04.Color': re-entrant initialization" in str(cause)


def test_the_error_repeats_on_every_call_instead_of_caching_a_broken_type():
    for _ in range(3):
        with pytest.raises(RuntimeError, match="step04.Color.RED"):
            step04.Color()


def test_plain_color_works():
    Color = step04.PlainColor()
    assert Color.DEFAULT_NAME == "red"
    red = Color("red")
    assert red.name == "red" and repr(red) == "step04.Color('red')"
    assert red == Color("red") and red != Color("blue")
    assert isinstance(red, Color)


@pytest.mark.parametrize("scenario", step04.scenarios(), ids=lambda s: s["name"])
def test_scenario_verdict_matches_prediction(scenario):
    outcome = step04.play(scenario["name"])
    assert outcome["verdict"] == scenario["predicted"], outcome["summary"]
