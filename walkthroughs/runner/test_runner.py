"""The walkthrough runner from the outside: its commands, its errors, its JSON traces
(validated against trace.schema.json) and the Mermaid diagrams rendered from them.
GILONCE_WALKTHROUGH names the runner binary (set by ctest)."""
import json
import os
import pathlib
import subprocess
import sys

import jsonschema
import pytest

import mermaid

HERE = pathlib.Path(__file__).parent
RUNNER = os.environ.get("GILONCE_WALKTHROUGH", "")
SCHEMA = json.loads((HERE / "trace.schema.json").read_text())


def run(*args, check=None):
    if not RUNNER:
        pytest.fail("GILONCE_WALKTHROUGH is not set: run these tests through ctest")
    result = subprocess.run([RUNNER, *args], capture_output=True, text=True, timeout=120)
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "traces.json"
    result = run("--format", "json", "--output", str(path), check=0)
    assert "not as predicted" in result.stderr  # the final count goes to stderr
    return json.loads(path.read_text())


def test_help_teaches_commands_verdicts_and_exit_status():
    out = run("--help", check=0).stdout
    for words in ("run", "list", "--format", "deadlocked", "crashed", "wrong result", "exit status", "examples"):
        assert words in out


def test_list_names_every_step_and_prediction():
    out = run("list", check=0).stdout
    for step in ("00-foundation", "01-unsound-lazy-type", "02-lock-that-deadlocks", "03-gil-as-the-lock",
                 "04-recursive-class-attributes", "05-two-stage-initialization", "06-many-interpreters",
                 "07-no-gil"):
        assert step in out
    assert ("static_two_threads_deadlock  [predicts: deadlocked, with «A holds static guard and waits for GIL»; "
            "«B holds GIL and waits for static guard»; «blocked in futex()»]") in out


@pytest.mark.parametrize("args, message", [
    (["run", "9"], "unknown step '9'"),
    (["--bogus"], "unknown option '--bogus'"),
    (["--format", "xml"], "unknown format 'xml'"),
    (["--format"], "--format needs a value"),
    (["run", "2", "--scenario", "nope"], "no scenario named 'nope'"),
])
def test_bad_usage_is_a_clear_error_with_status_2(args, message):
    result = run(*args, check=2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_one_step_by_number_narrates_its_scenarios():
    result = run("run", "2", "--scenario", "static_two_threads_deadlock", check=0)
    out = result.stdout
    assert "[1/1] 02-lock-that-deadlocks / static_two_threads_deadlock" in out
    assert "predicted: deadlocked" in out
    assert "observed:  deadlocked after" in out
    assert "A holds static guard and waits for GIL" in out
    assert "timeline" in out and "waits for static guard" in out
    assert "1 scenarios played, 1 as predicted, 0 not as predicted" in out


def test_steps_are_found_by_number_folder_or_slug():
    for key in ("3", "03", "03-gil-as-the-lock", "gil-as-the-lock"):
        assert "##### 03-gil-as-the-lock" in run("run", key, "--quiet", check=0).stdout


def test_json_report_matches_the_schema_and_every_prediction(full_report):
    jsonschema.validate(full_report, SCHEMA)
    steps = {s["step"] for s in full_report["scenarios"]}
    assert steps == {"00-foundation", "01-unsound-lazy-type", "02-lock-that-deadlocks", "03-gil-as-the-lock",
                     "04-recursive-class-attributes", "05-two-stage-initialization", "06-many-interpreters",
                     "07-no-gil"}
    # The own-GIL scenarios of step 06 are played from Python 3.12 on, and listed with
    # their reason before that; never silently dropped.
    own_gil = {"own_gil_interpreters_share_one_static_cell", "single_phase_module_refused_by_own_gil_interpreter",
               "own_gil_interpreters_build_their_own_colors_at_once",
               "own_gil_interpreters_fill_their_own_per_interpreter_cell"}
    played = {s["name"] for s in full_report["scenarios"]}
    not_played = {s["name"]: s["reason"] for s in full_report["not_played"]}
    if sys.version_info >= (3, 12):
        assert own_gil <= played and not not_played
    else:
        assert set(not_played) == own_gil and not own_gil & played
        assert all("need CPython 3.12+" in reason for reason in not_played.values())
    assert full_report["summary"]["not_played"] == len(not_played)
    assert all(s["as_predicted"] for s in full_report["scenarios"])
    assert full_report["summary"]["not_as_predicted"] == 0
    by_name = {s["name"]: s for s in full_report["scenarios"]}
    assert by_name["static_two_threads_deadlock"]["observed"] == "deadlocked"
    assert by_name["static_recursion_aborts_single_threaded"]["signal"] == 6
    assert by_name["second_thread_sees_unready_type"]["observed"] == "wrong result"
    events = by_name["race_on_gil_once_cell"]["events"]
    assert {e["thread"] for e in events} >= {"A", "B"}


def test_schema_rejects_a_malformed_report(full_report):
    broken = json.loads(json.dumps(full_report))
    broken["scenarios"][0]["observed"] = "exploded"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_every_scenario_renders_as_a_mermaid_sequence_diagram(full_report, tmp_path):
    for scenario in full_report["scenarios"]:
        diagram = mermaid.render(scenario)
        assert diagram.startswith("sequenceDiagram\n")
        assert f"Note over" in diagram
        for line in diagram.splitlines()[1:]:
            assert ";" not in line and "#" not in line
    report = tmp_path / "r.json"
    report.write_text(json.dumps(full_report))
    assert mermaid.main([str(report), "--all", "--output-dir", str(tmp_path / "mmd")]) == 0
    assert len(list((tmp_path / "mmd").rglob("*.mmd"))) == len(full_report["scenarios"])


def test_mermaid_draws_the_deadlock_as_it_happened():
    scenario = {
        "summary": "deadlocked after 0.005 s: A holds guard and waits for GIL; B holds GIL and waits for guard",
        "events": [
            {"t_ms": 0.1, "thread": "A", "kind": "holds", "resource": "guard", "text": ""},
            {"t_ms": 0.2, "thread": "B", "kind": "holds", "resource": "GIL", "text": ""},
            {"t_ms": 0.3, "thread": "A", "kind": "waits", "resource": "GIL", "text": ""},
            {"t_ms": 0.4, "thread": "B", "kind": "note", "resource": "", "text": "asks for the type"},
            {"t_ms": 0.5, "thread": "B", "kind": "waits", "resource": "guard", "text": ""},
        ],
    }
    assert mermaid.render(scenario) == (
        "sequenceDiagram\n"
        "    participant t_A as thread A\n"
        "    participant t_B as thread B\n"
        "    participant r_guard as guard\n"
        "    participant r_GIL as GIL\n"
        "    r_guard->>t_A: takes\n"
        "    r_GIL->>t_B: takes\n"
        "    t_A-)r_GIL: waits for\n"
        "    Note over t_B: asks for the type\n"
        "    t_B-)r_guard: waits for\n"
        "    Note over t_A,t_B: deadlocked after 0.005 s: A holds guard and waits for<br/>"
        "GIL, B holds GIL and waits for guard\n")


def test_mermaid_rejects_unknown_scenarios_and_foreign_files(tmp_path, capsys):
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"schema": "gilonce-trace/1", "scenarios": [], "summary": {}}))
    with pytest.raises(SystemExit) as e:
        mermaid.main([str(report), "01-x/nope"])
    assert e.value.code == 2 and "no scenario '01-x/nope'" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(SystemExit) as e:
        mermaid.main([str(other), "01-x/nope"])
    assert e.value.code == 2 and "not a gilonce-trace/1 report" in capsys.readouterr().err


def test_scenarios_this_build_cannot_play_are_listed_with_their_reason():
    result = run("run", "6", "--quiet", check=0)
    if sys.version_info >= (3, 12):
        assert "10 scenarios played, 10 as predicted, 0 not as predicted" in result.stdout
    else:
        assert "== not played: 06-many-interpreters / own_gil_interpreters_share_one_static_cell" in result.stdout
        assert "6 scenarios played, 6 as predicted, 0 not as predicted; 4 not played on this build" in result.stdout
        named = run("run", "6", "--scenario", "own_gil_interpreters_share_one_static_cell", check=2)
        assert "cannot be played by this build: not possible on this interpreter" in named.stderr
