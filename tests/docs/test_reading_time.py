"""reading_time.py fails on what it is for: a step page over the limit, a step without a site
page, a page that includes a file that is not there; and passes a step within the limit."""
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parent / "reading_time.py"


def tree(tmp_path, words, code_lines, page=True, include="walkthroughs/01-x/README.md"):
    step = tmp_path / "walkthroughs" / "01-x"
    step.mkdir(parents=True)
    code = "\n".join(f"int x{i};" for i in range(code_lines))
    (step / "README.md").write_text("# Step 01\n\n" + "word " * words + f"\n\n```cpp\n{code}\n```\n")
    if page:
        (tmp_path / "docs" / "walkthroughs").mkdir(parents=True)
        (tmp_path / "docs" / "walkthroughs" / "01-x.md").write_text(
            f'--8<-- "{include}"\n\n--8<-- "build/docs/generated/01-x-picture.md"\n')
    return tmp_path


def run(root):
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)


def test_a_step_within_the_limit_passes(tmp_path):
    # 2000 words (10 minutes) and 60 code lines (4 minutes): 14 minutes.
    result = run(tree(tmp_path, 2000, 60))
    assert result.returncode == 0, result.stderr
    assert "14.0 min" in result.stdout


def test_a_step_over_the_limit_fails_naming_it(tmp_path):
    # 2000 words and 90 code lines: 16 minutes, as a README and as its page.
    result = run(tree(tmp_path, 2000, 90))
    assert result.returncode == 1
    assert "01-x README: 16.0 minutes (limit 15)" in result.stderr
    assert "01-x site page: 16.0 minutes" in result.stderr


def test_a_step_without_a_site_page_fails(tmp_path):
    result = run(tree(tmp_path, 10, 1, page=False))
    assert result.returncode == 1 and "has no site page" in result.stderr


def test_a_page_including_a_missing_file_fails(tmp_path):
    result = run(tree(tmp_path, 10, 1, include="walkthroughs/01-x/gone.md"))
    assert result.returncode == 1 and "includes walkthroughs/01-x/gone.md, which does not exist" in result.stderr
