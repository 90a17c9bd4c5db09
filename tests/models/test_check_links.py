"""Self-test of check_links.py on a small synthetic header, model and links file: the good
case passes; each way the code can drift from the model (two lines swapped, one deleted, a
label without a link, a stale link, a fragment that names two lines, a function named
twice) fails naming it; braces in comments and literals do not move a body's end."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check_links  # noqa: E402

MODEL = """/* a model: labels named after the code lines of h.hpp and g.hpp */
proctype p() {
fast_check:  skip;   /* a comment with a colon: not a label */
py_call:     skip;
end_here:    skip;
detach:      skip;
lock:        skip;
  do
  :: true ->
see_full:    skip;
see_running: skip
  od;
attach:      skip;
detach_2:    skip;
lock_2:      skip
}
"""

# A `}` in a comment, a string, a char literal or a raw string would end wait_or_claim early
# if counted, and hooks.attach() would then be "deleted".
HEADER = """// h.hpp: a synthetic header.
struct core {
    /// Waits or claims. A brace in a comment: }
    template <class Hooks>
    outcome wait_or_claim(Hooks& hooks) {
        hooks.detach();  // then hooks.attach(); below: a comment, not a second match
        outcome found = outcome::full;
        {
            std::unique_lock<std::mutex>   lock(mutex_);  /* } */
            const auto seen = state_.load();  // under the mutex
            if (seen == full) {
                log("} not a brace");
                const char close = '}';
                const char* raw = R"x(}})x";
            }
        }
        hooks.attach();
        return found;
    }

    void reset_detached(Hooks& hooks) {
        hooks.detach();
        std::lock_guard<std::mutex> lock(mutex_);
        state_.store(empty);
    }
};
"""

OTHER_HEADER = """// g.hpp: the fast path, in another header.
inline bool get() {
    return state_.load(std::memory_order_acquire) == full;
}
"""

LINKS = """# links of m.pml
header: g.hpp
function: inline bool get(
fast_check: return state_.load(std::memory_order_acquire) == full;

header: h.hpp
function: outcome wait_or_claim(
detach: hooks.detach();
lock: std::unique_lock<std::mutex> lock(mutex_);
see_full: if (seen == full)
see_running: if (seen == full)
attach: hooks.attach();
function: void reset_detached(
detach_2: hooks.detach();
lock_2: std::lock_guard<std::mutex>   lock(mutex_);
"""


def run(tmp_path, capsys, header=HEADER, links=LINKS, model=MODEL):
    """check_links.main on the synthetic files: (exit status, printed lines)."""
    (tmp_path / "m.pml").write_text(model)
    (tmp_path / "m.links").write_text(links)
    (tmp_path / "h.hpp").write_text(header)
    (tmp_path / "g.hpp").write_text(OTHER_HEADER)
    status = check_links.main(["--root", str(tmp_path), "m.pml=m.links"])
    return status, capsys.readouterr().out.splitlines()


def fails(lines):
    return [line for line in lines if line.startswith("FAIL:")]


def test_labels_skip_builtin_and_python_side():
    assert check_links.labels(MODEL) == ["fast_check", "detach", "lock", "see_full", "see_running",
                                         "attach", "detach_2", "lock_2"]


def test_the_good_case_passes(tmp_path, capsys):
    status, out = run(tmp_path, capsys)
    assert status == 0, out
    assert out == ["ok: m.pml: 8 labels linked to their lines, in order, in 3 function(s) of g.hpp, h.hpp"]


def test_two_linked_lines_swapped_fail(tmp_path, capsys):
    detach, lock = "        hooks.detach();", "            std::unique_lock<std::mutex>   lock(mutex_);"
    header = HEADER.replace(lock, "@@").replace(detach, lock, 1).replace("@@", detach)
    assert header.index(lock) < header.index(detach)
    status, out = run(tmp_path, capsys, header=header)
    assert status == 1
    assert len(fails(out)) == 1
    assert fails(out)[0].startswith("FAIL: m.pml: lock: h.hpp: swapped:")
    assert "`detach`" in fails(out)[0]


def test_a_linked_line_deleted_fails(tmp_path, capsys):
    status, out = run(tmp_path, capsys, header=HEADER.replace("        hooks.attach();\n", ""))
    assert status == 1
    assert fails(out) == [f for f in fails(out) if f.startswith("FAIL: m.pml: attach: h.hpp: deleted:")]
    assert len(fails(out)) == 1


def test_a_label_without_a_link_fails(tmp_path, capsys):
    status, out = run(tmp_path, capsys, links=LINKS.replace("attach: hooks.attach();\n", ""))
    assert status == 1
    assert fails(out) == ["FAIL: m.pml: attach: no link in m.links (which code line is this step?)"]


def test_a_stale_link_fails(tmp_path, capsys):
    status, out = run(tmp_path, capsys, links=LINKS.replace("attach: hooks.attach();\n",
                                                            "attach: hooks.attach();\nvanished: return found;\n"))
    assert status == 1
    assert len(fails(out)) == 1
    assert fails(out)[0].startswith("FAIL: m.pml: vanished: h.hpp: stale link")


def test_a_python_side_label_may_be_linked(tmp_path, capsys):
    status, out = run(tmp_path, capsys, links=LINKS + "py_call: state_.store(empty);\n")
    assert status == 0, out


def test_an_ambiguous_fragment_fails(tmp_path, capsys):
    status, out = run(tmp_path, capsys, links=LINKS.replace("detach: hooks.detach();", "detach: hooks."))
    assert status == 1
    assert len(fails(out)) == 1
    assert fails(out)[0].startswith("FAIL: m.pml: detach: h.hpp: ambiguous: lines 6, 17 ")
    assert "make the fragment longer" in fails(out)[0]


def test_a_function_fragment_found_twice_fails(tmp_path, capsys):
    links = LINKS.replace("function: void reset_detached(", "function: (Hooks& hooks) {")
    status, out = run(tmp_path, capsys, links=links)
    assert status == 1
    assert fails(out) and all("occurs 2 times (lines 5, 21)" in f for f in fails(out))
    assert {f.split(":")[2].strip() for f in fails(out)} == {"detach_2", "lock_2"}


def test_a_function_fragment_on_a_declaration_fails(tmp_path, capsys):
    header = HEADER.replace("struct core {\n", "struct core {\n    void reset_later(Hooks& hooks);\n")
    status, out = run(tmp_path, capsys, header=header,
                      links=LINKS.replace("function: void reset_detached(", "function: void reset_later("))
    assert status == 1
    assert fails(out) and all("does not begin a function definition" in f for f in fails(out))


def test_braces_in_comments_and_literals_do_not_end_the_body(tmp_path, capsys):
    # hooks.attach() (after every brace in a comment or literal) is inside wait_or_claim, and
    # reset_detached's lines are not: the body ends at its own closing brace.
    status, out = run(tmp_path, capsys, links=LINKS.replace("attach: hooks.attach();",
                                                            "attach: hooks.attach();\nlock_2: state_.store(empty);"))
    assert status == 1
    assert any(f.startswith("FAIL: m.pml: lock_2: h.hpp: deleted: no line of function "
                            "`outcome wait_or_claim(` (lines 5-19)") for f in fails(out))


def test_a_label_before_any_function_is_malformed(tmp_path, capsys):
    status, out = run(tmp_path, capsys, links="header: h.hpp\ndetach: hooks.detach();\n" + LINKS)
    assert status == 1
    assert "FAIL: m.pml: m.links:2: label `detach` before any `function:` of its header" in out


def test_missing_files_fail(tmp_path, capsys):
    (tmp_path / "m.pml").write_text(MODEL)
    assert check_links.main(["--root", str(tmp_path), "m.pml=nope.links"]) == 1
    assert capsys.readouterr().out.startswith("FAIL: m.pml: nope.links does not exist")
    status, out = run(tmp_path, capsys, links=LINKS.replace("header: g.hpp", "header: gone.hpp"))
    assert status == 1
    assert fails(out) == ["FAIL: m.pml: function `inline bool get(`: gone.hpp does not exist (m.links:3)"]


@pytest.mark.parametrize("model", sorted(check_links.MODELS))
def test_the_default_table_names_real_models(model):
    assert (check_links.ROOT / model).is_file()
    assert check_links.MODELS[model] == model.removesuffix(".pml") + ".links"
