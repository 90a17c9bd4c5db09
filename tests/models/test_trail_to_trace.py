"""The counterexample SPIN finds for models/gil_cell_without_gil.pml, as a walkthrough
trace: it validates against the runner's schema, and mermaid.render draws both threads."""
import json
import pathlib
import shutil
import subprocess
import sys

import jsonschema
import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "walkthroughs" / "runner"))
import mermaid  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("spin") is None, reason="spin is not installed")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("trail") / "report.json"
    subprocess.run([sys.executable, str(HERE / "trail_to_trace.py"), "--work-dir",
                    str(out.parent / "work"), "--output", str(out)], check=True)
    return json.loads(out.read_text())


def test_report_validates_against_the_schema(report):
    schema = json.loads((ROOT / "walkthroughs" / "runner" / "trace.schema.json").read_text())
    jsonschema.validate(report, schema)


def test_the_trail_shows_two_stores(report):
    scenario = report["scenarios"][0]
    assert scenario["observed"] == "wrong result" and scenario["as_predicted"]
    assert all(detail in scenario["detail"] for detail in scenario["predicted_details"])
    passes = [e["thread"] for e in scenario["events"] if e["kind"] == "passes"]
    assert sorted(passes) == ["A", "B"]  # both got past the re-check


def test_mermaid_draws_both_threads(report):
    diagram = mermaid.render(report["scenarios"][0])
    assert diagram.startswith("sequenceDiagram")
    assert "participant t_A as thread A" in diagram and "participant t_B as thread B" in diagram
