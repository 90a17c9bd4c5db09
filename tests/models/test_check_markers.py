"""Self-test of check_markers.py: a header missing one marker fails, naming that label;
with every marker it passes."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check_markers  # noqa: E402

MODEL = """/* a model */
proctype p() {
fast_check:  skip;   /* a comment with a colon: not a label */
py_call:     skip;
end_here:    skip;
  do
  :: true ->
lock:        skip
  od;
lock_2:      skip
}
"""


def write(tmp_path, header):
    (tmp_path / "m.pml").write_text(MODEL)
    (tmp_path / "h.hpp").write_text(header)
    return ["--root", str(tmp_path), "m.pml=h.hpp"]


def test_labels_skip_builtin_and_python_side():
    assert check_markers.labels(MODEL) == ["fast_check", "lock", "lock_2"]


def test_missing_marker_fails_naming_it(tmp_path, capsys):
    args = write(tmp_path, "if (x) return;  // SPIN: fast_check\n")
    assert check_markers.main(args) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and out.rstrip().endswith("h.hpp: lock, lock_2")


def test_repeated_step_shares_its_marker(tmp_path, capsys):
    args = write(tmp_path, "a;  // SPIN: fast_check\nb;  // SPIN: lock\n")  # lock_2 needs no marker of its own
    assert check_markers.main(args) == 0


def test_all_marked_passes(tmp_path, capsys):
    args = write(tmp_path, "a;  // SPIN: fast_check\nb;  // SPIN: lock\n")
    assert check_markers.main(args) == 0
    assert "ok:" in capsys.readouterr().out


def test_missing_header_fails(tmp_path):
    (tmp_path / "m.pml").write_text(MODEL)
    assert check_markers.main(["--root", str(tmp_path), "m.pml=nope.hpp"]) == 1
