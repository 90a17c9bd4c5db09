"""tools/listings.py: the walkthrough READMEs carry their code, written from the compiled
regions by cog, and the check fails as soon as a region and its README differ."""
import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import listings  # noqa: E402

STEP = "walkthroughs/02-lock-that-deadlocks"


def test_every_readme_matches_its_sources():
    assert listings.main(["--check", "--root", str(ROOT)]) == 0


@pytest.fixture
def step_copy(tmp_path, monkeypatch):
    """A copy of the walkthroughs (READMEs and sources) under a root of its own."""
    shutil.copytree(ROOT / "walkthroughs", tmp_path / "walkthroughs")  # READMEs quote earlier steps too
    monkeypatch.setenv(listings.ROOT_ENV, str(tmp_path))
    return tmp_path


def test_a_region_changed_without_its_readme_fails_the_check(step_copy, capsys):
    readme = step_copy / STEP / "README.md"
    source = step_copy / STEP / "locked_lazy_types.cpp"
    assert listings.main(["--check", "--root", str(step_copy), str(readme)]) == 0
    text = source.read_text()
    marker = "    // BAD: the guard is held for the whole build, and the build may release the GIL.\n"
    assert marker in text
    source.write_text(text.replace(marker, marker + "    // a line the README does not have\n"))
    assert listings.main(["--check", "--root", str(step_copy), str(readme)]) == 1
    assert "differs from its compiled source" in capsys.readouterr().err
    # --write brings the README back in line, and the check passes again.
    assert listings.main(["--write", "--root", str(step_copy), str(readme)]) == 0
    assert "// a line the README does not have" in readme.read_text()
    assert listings.main(["--check", "--root", str(step_copy), str(readme)]) == 0


def test_listings_leave_out_the_tracing_lines_and_nothing_else(step_copy):
    region = [line for _, line in listings.region_lines(f"{STEP}/locked_lazy_types.cpp", "static")]
    shown = listings.lesson_code(f"{STEP}/locked_lazy_types.cpp", "static").splitlines()
    traced = [line for line in region if listings.TRACING.match(line)]
    assert traced, "the compiled region has tracing lines"
    assert not any("harness::record" in line or "waits_for(" in line for line in shown)
    assert len(shown) == len(region) - len(traced)


def test_a_tracing_call_over_several_lines_is_an_error(step_copy):
    source = step_copy / STEP / "locked_lazy_types.cpp"
    text = source.read_text()
    one_line = "        harness::record(event_kind::holds, static_guard);\n"
    assert one_line in text
    source.write_text(text.replace(one_line, "        harness::record(event_kind::holds,\n                        static_guard);\n"))
    with pytest.raises(listings.ListingError, match="one statement on one line"):
        listings.lesson_code(f"{STEP}/locked_lazy_types.cpp", "static")


def test_a_missing_region_is_named(step_copy):
    with pytest.raises(listings.ListingError, match="no region 'nowhere'"):
        listings.lesson_code(f"{STEP}/locked_lazy_types.cpp", "nowhere")


# function(path, fragment): a whole definition from a file without markers (the shipped
# headers), found by a literal part of its first line.
SOURCE = """// s.hpp: a synthetic header for function().
namespace demo {

int unrelated();  // a declaration: the comment and template lines above the next one are its own

/// Twice the value. A brace in a comment: }
// (a plain comment line is kept too)
template <class T,
          class U = int>  // a template header over two lines
T twice(T value) {
    const char* text = "} not a brace";
    const char brace = '}';
    if (value) {  /* { */
        return value + value;
    }
    return value;
}

int after() { return 1; }

inline int twice_declared(int);
inline int twice_declared(int x) { return x; }
inline int twice_declared(long x) { return int(x); }

}  // namespace demo
"""

EXPECTED = """/// Twice the value. A brace in a comment: }
// (a plain comment line is kept too)
template <class T,
          class U = int>  // a template header over two lines
T twice(T value) {
    const char* text = "} not a brace";
    const char brace = '}';
    if (value) {  /* { */
        return value + value;
    }
    return value;
}"""


@pytest.fixture
def header_root(tmp_path, monkeypatch):
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "s.hpp").write_text(SOURCE)
    monkeypatch.setenv(listings.ROOT_ENV, str(tmp_path))
    return tmp_path


def test_function_lists_the_definition_with_its_comment_and_template_lines(header_root):
    assert listings.function_code("include/s.hpp", "T twice(") == EXPECTED


def test_function_is_dedented_and_ends_at_its_own_brace(header_root):
    shown = listings.function_code("include/s.hpp", "int after(")
    assert shown == "int after() { return 1; }"
    indented = SOURCE.replace("int after() { return 1; }", "    int after() {\n        return 1;\n    }")
    (header_root / "include" / "s.hpp").write_text(indented)
    assert listings.function_code("include/s.hpp", "int after(") == "int after() {\n    return 1;\n}"


def test_function_leaves_out_region_markers_and_tracing_lines(header_root):
    traced = SOURCE.replace("    return value;\n}", "    harness::record(event_kind::holds, value);\n"
                                                   "    return value;\n    // --8<-- [end:x]\n}")
    (header_root / "include" / "s.hpp").write_text(traced)
    assert listings.function_code("include/s.hpp", "T twice(") == EXPECTED


def test_function_fragment_found_twice_is_an_error_naming_the_file_and_count(header_root):
    with pytest.raises(listings.ListingError, match=r"include/s.hpp: `twice_declared\(int` occurs 2 times"):
        listings.function_code("include/s.hpp", "twice_declared(int")


def test_function_fragment_not_found_or_on_a_declaration_is_an_error(header_root):
    with pytest.raises(listings.ListingError, match=r"include/s.hpp: `thrice\(` occurs 0 times"):
        listings.function_code("include/s.hpp", "thrice(")
    with pytest.raises(listings.ListingError, match="does not begin a function definition"):
        listings.function_code("include/s.hpp", "int unrelated(")


def test_function_in_a_cog_block_is_written_and_checked(header_root):
    readme = header_root / "walkthroughs" / "99-demo" / "README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text('<!-- [[[cog function("include/s.hpp", "T twice(")]]] -->\n<!-- [[[end]]] -->\n')
    assert listings.main(["--check", "--root", str(header_root), str(readme)]) == 1
    assert listings.main(["--write", "--root", str(header_root), str(readme)]) == 0
    assert f"```cpp\n{EXPECTED}\n```" in readme.read_text()
    assert listings.main(["--check", "--root", str(header_root), str(readme)]) == 0
