"""Builds the gilonce documentation site, in this order, failing on the first problem:

1. plays every walkthrough scenario with the runner (--format json): the traces; and adds
   SPIN's counterexample for models/gil_cell_without_gil.pml (tests/models/trail_to_trace.py)
   to step 07's, so that it is drawn like an observed scenario;
2. draws each scenario's trace as a sequence diagram (walkthroughs/runner/mermaid.py,
   rendered to SVG offline by mermaidx) and writes, per step, the Markdown that the step's
   page includes (its one picture) and its scenarios page includes (every diagram, with
   the legend): every diagram on the site comes from a real run;
3. runs Doxygen on reference/include (warnings are errors: every public entity must be
   documented) and Sphinx + Breathe on its XML (-W) into docs/api/;
4. checks that every code block is included from a compiled file or marked pseudo-code;
5. runs `mkdocs build --strict`.

usage: build_docs.py --runner PATH_TO_gilonce-walkthrough [--site DIR] [--work DIR]
"""
import argparse
import json
import tempfile
import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "walkthroughs" / "runner"))
sys.path.insert(0, str(ROOT / "tests" / "docs"))
import mermaid  # noqa: E402
import check_code_blocks  # noqa: E402

DIAGRAMS = ROOT / "docs" / "_generated" / "diagrams"   # inside docs_dir: copied to the site
API_HTML = ROOT / "docs" / "api"                         # inside docs_dir: copied to the site


def step(message):
    print(f"[docs] {message}", flush=True)


def run(cmd, **kwargs):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(cmd, env=env, **kwargs)
    if result.returncode != 0:
        sys.exit(f"build_docs.py: failed ({result.returncode}): {' '.join(map(str, cmd))}")


# The scenario that tells each step's story in one picture, drawn first on its page.
HEADLINES = {
    "01-unsound-lazy-type": "second_thread_sees_unready_type",
    "02-lock-that-deadlocks": "static_two_threads_deadlock",
    "03-gil-as-the-lock": "two_threads_share_one_type",
    "04-recursive-class-attributes": "recursive_attribute_is_a_clear_error",
    "05-two-stage-initialization": "racing_threads_never_see_missing_attributes",
    "06-many-interpreters": "static_type_outlives_its_sub_interpreter",
    "07-no-gil": "gil_cell_protocol_without_gil_stores_twice",
}

# Step 07 also draws SPIN's counterexample, under this name: the trail that its first
# scenario replays with real threads.
SPIN_COUNTEREXAMPLE = "spin_counterexample_gil_cell_without_gil"


def spin_counterexample():
    """SPIN's trail for models/gil_cell_without_gil.pml as a step 07 scenario (runs SPIN)."""
    sys.path.insert(0, str(ROOT / "tests" / "models"))
    import trail_to_trace

    with tempfile.TemporaryDirectory(prefix="gilonce-docs-trail-") as tmp:
        scenario = trail_to_trace.trace(trail_to_trace.MODEL, pathlib.Path(tmp))
    if not scenario["as_predicted"]:
        sys.exit("build_docs.py: SPIN found no counterexample in models/gil_cell_without_gil.pml")
    scenario["demonstrates"] = ("SPIN's counterexample for models/gil_cell_without_gil.pml, drawn from its trail "
                                "(each step's time is the trail's step number): " + scenario["demonstrates"])
    return {**scenario, "step": "07-no-gil", "name": SPIN_COUNTEREXAMPLE}


def fit_note_text(svg_path):
    """The renderer sizes note boxes with font metrics narrower than the browser's fallback
    font, so note text ran past its box: draw note text smaller than measured (16px -> 14px)."""
    svg = svg_path.read_text()
    svg = re.sub(r'(class="noteText"[^>]*style="[^"]*?)font-size: 16px', r"\1font-size: 14px", svg)
    svg_path.write_text(svg)


def write_diagrams(report, work):
    import mermaidx

    scenarios = report["scenarios"]
    shutil.rmtree(DIAGRAMS, ignore_errors=True)
    sources = [mermaid.render(s) for s in scenarios]
    legend_source = mermaid.render(mermaid.LEGEND)
    *drawn, legend = mermaidx.render_many(sources + [legend_source], workers=2)
    DIAGRAMS.mkdir(parents=True, exist_ok=True)
    (DIAGRAMS / "legend.mmd").write_text(legend_source)
    legend.save(str(DIAGRAMS / "legend.svg"))
    fit_note_text(DIAGRAMS / "legend.svg")
    pages = {}
    for scenario, source, diagram in zip(scenarios, sources, drawn):
        folder = DIAGRAMS / scenario["step"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{scenario['name']}.mmd").write_text(source)
        diagram.save(str(folder / f"{scenario['name']}.svg"))
        fit_note_text(folder / f"{scenario['name']}.svg")
        # The verdict is written out as text too (the diagram's closing note says it again),
        # so a reader who cannot see the picture still reads what was observed.
        verdict = "as predicted" if scenario["as_predicted"] else "**NOT as predicted**"
        observed = re.sub(r"([\\`*_\[\]<>|])", r"\\\1", scenario["summary"].replace("\n", " "))
        pages.setdefault(scenario["step"], []).append(
            f"### `{scenario['name']}`\n\n"
            f"*Shows:* {scenario['demonstrates']}.\n\n*Observed* ({verdict}): {observed}\n\n"
            f"![Sequence diagram of {scenario['name']}, from a real run: {re.sub(r'[][]', '', scenario['summary'])}]"
            f"(../_generated/diagrams/{scenario['step']}/{scenario['name']}.svg)\n")
    generated = work / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir(parents=True)
    legend_section = ("### How to read these diagrams\n\n"
                      "One lifeline per thread and one per lock (the GIL, and each step's once-lock). "
                      "*thread main* is the scenario's own thread: it starts the named threads and waits "
                      "for them, or is itself the only caller. A shaded band marks the waits that close "
                      "a wait-for cycle. This legend is drawn by the same renderer, from a made-up trace "
                      "with one event of each kind:\n\n"
                      "![Legend of the sequence diagrams](../_generated/diagrams/legend.svg)\n")
    # Per step, two files: the step in one picture (included by the step's own page) and
    # every scenario with the legend (the step's scenarios page, an appendix of its own).
    for step_id, sections in pages.items():
        headline = HEADLINES.get(step_id)
        if headline:
            shows = next(s["demonstrates"] for s in scenarios if s["step"] == step_id and s["name"] == headline)
            (generated / f"{step_id}-picture.md").write_text(
                f"`{headline}`: {shows}.\n\n"
                f"![The step in one picture: {headline}](../_generated/diagrams/{step_id}/{headline}.svg)\n")
        (generated / f"{step_id}.md").write_text("\n".join([legend_section, "### Every scenario\n"] + sections))
    return len(scenarios)


def build_api(work):
    doxygen_out = work / "doxygen"
    shutil.rmtree(doxygen_out, ignore_errors=True)
    doxygen_out.mkdir(parents=True)
    doxyfile = doxygen_out / "Doxyfile"
    doxyfile.write_text((ROOT / "docs" / "api-src" / "Doxyfile").read_text() +
                        f"\nOUTPUT_DIRECTORY = {doxygen_out}\n")
    run(["doxygen", str(doxyfile)], cwd=ROOT / "docs" / "api-src")
    shutil.rmtree(API_HTML, ignore_errors=True)
    run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-D", f"breathe_projects.gilonce={doxygen_out / 'xml'}",
         str(ROOT / "docs" / "api-src"), str(API_HTML)])
    shutil.rmtree(API_HTML / ".doctrees", ignore_errors=True)
    (API_HTML / ".buildinfo").unlink(missing_ok=True)


def api_entities(work):
    """The API reference's entities, one line each (name, first line of its contract, link),
    as Markdown that the reference page includes: the course's search indexes only the
    mkdocs pages, and this makes every class and member with an entry in the API reference
    (Sphinx's inventory) findable from it, each linked to that entry, with the first line of
    its contract from Doxygen's XML."""
    import xml.etree.ElementTree as ET
    import zlib

    inventory = (API_HTML / "objects.inv").read_bytes().split(b"\n", 4)[4]
    anchors = {}
    for line in zlib.decompress(inventory).decode().splitlines():
        # "name domain:role priority uri display-name": a name may hold spaces (operator bool)
        m = re.match(r"(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S+)\s+(.*)$", line)
        if m and m.group(2) in ("cpp:class", "cpp:function", "cpp:member"):
            anchors.setdefault(m.group(1), m.group(4))

    def text(node):
        return " ".join("".join(node.itertext()).split()) if node is not None else ""

    rows = []
    for xml in sorted((work / "doxygen" / "xml").glob("*.xml")):
        compound = ET.parse(xml).getroot().find("compounddef")
        if compound is None or compound.get("kind") not in ("class", "struct", "namespace", "file"):
            continue
        owner = compound.findtext("compoundname")
        if compound.get("kind") in ("class", "struct"):
            rows.append((owner, text(compound.find("briefdescription"))))
        scope = owner if compound.get("kind") in ("class", "struct", "namespace") else "gilonce"
        for member in compound.iter("memberdef"):
            if member.get("prot") != "public" or member.get("kind") not in ("function", "variable"):
                continue
            brief = text(member.find("briefdescription"))
            if not brief:  # no brief line: the first sentence of the detailed description
                brief = re.split(r"(?<=[.:])\s", text(member.find("detaileddescription")), maxsplit=1)[0]
            rows.append((f"{scope}::{member.findtext('name')}", brief))
    lines, seen = [], set()
    # An overload's "Deleted: ..." line comes after the usable overload's.
    # Every class and member that has an entry in the API reference (its inventory), each
    # with its contract's first line from the XML (of overloads, the first that has one and
    # is not "Deleted: ...").
    briefs = {}
    for name, brief in sorted(rows, key=lambda row: (row[0], not row[1], row[1].startswith("Deleted"), row[1])):
        briefs.setdefault(name, brief)
    lines = []
    for name in sorted(anchors):
        brief = (briefs.get(name) or "(see its entry)").replace("|", "\\|")
        lines.append(f"| [`{name}`](api/{anchors[name]}) | {brief} |")
    if len(lines) < 20:
        sys.exit(f"build_docs.py: only {len(lines)} API entities found")
    (work / "generated" / "api-entities.md").write_text(
        "| entity | its contract's first line |\n| --- | --- |\n" + "\n".join(lines) + "\n")
    return len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", required=True, help="the gilonce-walkthrough binary")
    parser.add_argument("--site", default=str(ROOT / "build" / "site"))
    parser.add_argument("--work", default=str(ROOT / "build" / "docs"))
    args = parser.parse_args()
    work = pathlib.Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not pathlib.Path(args.runner).is_file():
        sys.exit(f"build_docs.py: no runner at {args.runner} (build the project first)")

    step("playing every scenario for the traces")
    traces = work / "traces.json"
    run([args.runner, "--format", "json", "--output", str(traces)])
    report = json.loads(traces.read_text())
    step("SPIN: the counterexample of models/gil_cell_without_gil.pml, for step 07")
    report["scenarios"].append(spin_counterexample())
    step(f"drawing {len(report['scenarios'])} sequence diagrams from the traces")
    write_diagrams(report, work)
    step("API reference: Doxygen, then Sphinx + Breathe")
    build_api(work)
    step(f"API entities for the course's search: {api_entities(work)}")
    # The step pages include build/docs/generated/<step>.md: keep that path stable.
    expected = ROOT / "build" / "docs" / "generated"
    if work / "generated" != expected:
        shutil.rmtree(expected, ignore_errors=True)
        shutil.copytree(work / "generated", expected)
    step("checking code blocks")
    problems = check_code_blocks.check(ROOT)
    if problems:
        sys.exit("build_docs.py: code blocks that are neither included nor pseudo-code:\n  " + "\n  ".join(problems))
    step("mkdocs build --strict")
    run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(pathlib.Path(args.site).resolve())], cwd=ROOT)
    step(f"site written to {args.site}")


if __name__ == "__main__":
    main()
