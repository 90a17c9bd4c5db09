"""Self-test of mutate.py's refusals, with no SPIN run: a fragment that is not in the model,
or is in it twice, fails naming the mutant (so the list cannot rot silently), as does a
malformed killed_by or an edit that changes nothing; and the shipped list applies cleanly to
the shipped models, with 20 mutants or more."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import mutate  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = """proctype p() {
lock:    lock_();
unlock:  unlock_();
lock_2:  lock_();
}
"""


def mutants_file(tmp_path, edits, killed_by="safety: invalid end state", name="m1"):
    (tmp_path / "m.pml").write_text(MODEL)
    lines = ", ".join(f"[{a!r}, {b!r}]" for a, b in edits)
    path = tmp_path / "mutants.toml"
    path.write_text(f'[[mutant]]\nname = "{name}"\nmodel = "m.pml"\ndefines = []\n'
                    f'stands_for = "x.hpp:1, a mistake"\nedits = [{lines}]\nkilled_by = "{killed_by}"\n')
    return path


def run(tmp_path, path, capsys):
    code = mutate.main(["--mutants", str(path), "--models", str(tmp_path)])
    return code, capsys.readouterr().out


def test_applies_a_fragment_found_once():
    assert mutate.apply_edits("m", MODEL, [["unlock_();", "skip;"]]) == MODEL.replace("unlock_();", "skip;")


def test_refuses_a_fragment_not_found(tmp_path, capsys):
    code, out = run(tmp_path, mutants_file(tmp_path, [["notify_all_();", "skip;"]], name="gone"), capsys)
    assert code == 2
    assert "mutant gone: fragment found 0 times" in out


def test_refuses_a_fragment_found_twice(tmp_path, capsys):
    code, out = run(tmp_path, mutants_file(tmp_path, [[" lock_();", " skip;"]], name="twice"), capsys)
    assert code == 2
    assert "mutant twice: fragment found 2 times" in out


def test_refuses_a_second_edit_that_rotted():
    with pytest.raises(mutate.MutantError, match="mutant m: fragment found 0 times"):
        mutate.apply_edits("m", MODEL, [["unlock_();", "skip;"], ["unlock_();", "skip;"]])


def test_refuses_an_edit_that_changes_nothing():
    with pytest.raises(mutate.MutantError, match="changes nothing"):
        mutate.apply_edits("m", MODEL, [["unlock_();", "unlock_();"]])


@pytest.mark.parametrize("killed_by", ["safety: deadlock", "liveness: assertion", "safety: assertion", "both"])
def test_refuses_a_malformed_killer(tmp_path, capsys, killed_by):
    code, out = run(tmp_path, mutants_file(tmp_path, [["unlock_();", "skip;"]], killed_by=killed_by), capsys)
    assert code == 2
    assert "mutant m1: killed_by must read" in out


def test_the_assertion_on_a_line_is_read_as_written():
    line = "  atomic { !stw -> assert(mutex != me); attached[me] = true }"
    assert mutate.assertion_at(line) == "mutex != me"
    assert mutate.assertion_at("py_returned: assert((a || b) && c);  /* x */") == "(a || b) && c"


def test_the_shipped_list_applies_to_the_shipped_models():
    mutants = mutate.load(ROOT / "models" / "mutants.toml")
    assert len(mutants) >= 20
    for m in mutants:
        text = (ROOT / "models" / m["model"]).read_text()
        assert mutate.apply_edits(m["name"], text, m["edits"]) != text
