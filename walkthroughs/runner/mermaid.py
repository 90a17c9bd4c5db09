"""Renders one scenario of a gilonce-walkthrough JSON report (schema gilonce-trace/1) as a
Mermaid sequence diagram: one lifeline per thread, per lock and per subject a note names
(an interpreter, a cell), an arrow per event, and the observed verdict as a closing note. The docs build draws every diagram this way, from
real traces, never by hand.

usage: mermaid.py REPORT.json STEP/SCENARIO [--output FILE]
       mermaid.py REPORT.json --all --output-dir DIR     (one .mmd file per scenario)
"""
import argparse
import json
import pathlib
import re
import sys

# A note that names a resource (an interpreter entered or ended, a cell read or written) is
# drawn as a plain line, no arrowhead, from the thread to that subject's own lifeline.
NOTE_ON = "->"

# (arrow, verb, drawn from the lock to the thread?). Each kind of event has its own look:
# asking is an open-headed arrow to the lock, taking a solid arrow from it, letting go a
# dotted open arrow to it, getting past without taking a dotted solid arrow from it.
ARROWS = {
    "waits": ("-)", "waits for", False),
    "holds": ("->>", "takes", True),
    "releases": ("--)", "releases", False),
    "passes": ("-->>", "gets past, without taking", True),
}

# The legend: a made-up trace with one event of each kind, drawn by `render` itself, so
# the legend always looks exactly like the diagrams it explains.
LEGEND = {
    "summary": "the closing note: the verdict the watchdog observed",
    "events": [
        {"thread": "A", "kind": "waits", "resource": "a lock", "text": ""},
        {"thread": "A", "kind": "holds", "resource": "a lock", "text": ""},
        {"thread": "B", "kind": "waits", "resource": "a lock", "text": ""},
        {"thread": "A", "kind": "note", "resource": "", "text": "a note: what the code said it was doing"},
        {"thread": "A", "kind": "note", "resource": "a subject", "text": "what it did to a subject"},
        {"thread": "A", "kind": "releases", "resource": "a lock", "text": ""},
        {"thread": "B", "kind": "passes", "resource": "a lock", "text": ""},
    ],
}


def identifier(name):
    """A Mermaid participant id for a thread or lock name ("static guard" -> static_guard)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"


def text(value, limit=90):
    """Text safe inside a Mermaid message or note (no ';', '#', line breaks; bounded)."""
    value = value.replace(";", ",").replace("#", "").replace("\n", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def note(value, limit, width=44):
    """Note text, wrapped into lines of about `width` characters: a long one-line note is
    wider than its box once drawn."""
    import textwrap
    return "<br/>".join(textwrap.wrap(text(value, limit), width)) or " "


CYCLE_LINK = re.compile(r"([^\s:;,]+) holds (.+?) and waits for (.+?)(?=;|$)")


def cycle_waits(scenario):
    """For a deadlock found from the trace, the (thread, resource) waits of its cycle, read
    off the verdict ("A holds X and waits for Y; B holds Y and waits for X; observed: ...")."""
    summary = scenario.get("summary", "")
    if not summary.startswith("deadlocked") or "observed:" not in summary:
        return []
    cycle_part = summary.split(": ", 1)[1].split("; observed:")[0]
    return [(m.group(1), m.group(3).strip()) for m in CYCLE_LINK.finditer(cycle_part)]


def render(scenario):
    """The Mermaid source for one scenario of the report."""
    events = scenario["events"]
    # Scenario threads in name order (A, B, C...), the scenario's own main thread last.
    threads = sorted(dict.fromkeys(e["thread"] for e in events), key=lambda t: (t == "main", t))
    locks = list(dict.fromkeys(e["resource"] for e in events if e["resource"]))
    lines = ["sequenceDiagram"]
    for thread in threads:
        lines.append(f"    participant {identifier('t_' + thread)} as thread {text(thread)}")
    for lock in locks:
        lines.append(f"    participant {identifier('r_' + lock)} as {text(lock)}")
    # The waits that close the wait-for cycle are drawn on a shaded band, from the first of
    # them to the end, with a note saying what the band is.
    waits = cycle_waits(scenario)
    last_wait = {}
    for index, e in enumerate(events):
        if e["kind"] == "waits" and (e["thread"], e["resource"]) in waits:
            last_wait[(e["thread"], e["resource"])] = index
    band_from = min(last_wait.values()) if waits and len(last_wait) == len(waits) else None
    for index, e in enumerate(events):
        if index == band_from:
            lines.append("    rect rgba(255, 160, 160, 0.35)")
        who = identifier("t_" + e["thread"])
        if e["kind"] == "note" and e["resource"]:
            lines.append(f"    {who}{NOTE_ON}{identifier('r_' + e['resource'])}: {text(e['text'], 60)}")
            continue
        if e["kind"] == "note":
            lines.append(f"    Note over {who}: {note(e['text'], 90)}")
            continue
        arrow, verb, from_lock = ARROWS[e["kind"]]
        target = identifier("r_" + e["resource"])
        if from_lock:
            lines.append(f"    {target}{arrow}{who}: {verb}")
        else:
            lines.append(f"    {who}{arrow}{target}: {verb}")
    span = [identifier("t_" + t) for t in threads] or ["_"]
    over = span[0] if len(span) == 1 else f"{span[0]},{span[-1]}"
    if band_from is not None:
        cycle_threads = [identifier("t_" + t) for t, _ in waits]
        lines.append(f"    Note over {cycle_threads[0]},{cycle_threads[-1]}: "
                     f"{note('the wait-for cycle: each waits for a lock the next one holds', 90)}"
                     if len(set(cycle_threads)) > 1 else
                     f"    Note over {cycle_threads[0]}: {note('the wait-for cycle: it waits for a lock it holds', 90)}")
        lines.append("    end")
    if not threads:
        lines.append("    participant _ as (no events)")
    lines.append(f"    Note over {over}: {note(scenario['summary'], 400, 54)}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Render walkthrough traces as Mermaid sequence diagrams.")
    parser.add_argument("report")
    parser.add_argument("scenario", nargs="?", help="STEP/SCENARIO, e.g. 02-lock-that-deadlocks/static_two_threads_deadlock")
    parser.add_argument("--all", action="store_true", help="render every scenario")
    parser.add_argument("--output", help="file for one diagram (default: standard output)")
    parser.add_argument("--output-dir", help="folder for --all: STEP/SCENARIO.mmd")
    args = parser.parse_args(argv)
    try:
        report = json.loads(pathlib.Path(args.report).read_text())
    except (OSError, ValueError) as e:
        parser.exit(2, f"mermaid.py: cannot read the report {args.report}: {e}\n")
    if report.get("schema") != "gilonce-trace/1":
        parser.exit(2, f"mermaid.py: {args.report} is not a gilonce-trace/1 report\n")
    scenarios = {f"{s['step']}/{s['name']}": s for s in report["scenarios"]}
    if args.all:
        if not args.output_dir:
            parser.exit(2, "mermaid.py: --all needs --output-dir\n")
        for key, scenario in scenarios.items():
            path = pathlib.Path(args.output_dir) / f"{key}.mmd"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(scenario))
        print(f"{len(scenarios)} diagrams written under {args.output_dir}")
        return 0
    if args.scenario not in scenarios:
        known = "\n  ".join(scenarios) or "(none)"
        parser.exit(2, f"mermaid.py: no scenario '{args.scenario}' in the report; it has:\n  {known}\n")
    diagram = render(scenarios[args.scenario])
    if args.output:
        pathlib.Path(args.output).write_text(diagram)
    else:
        sys.stdout.write(diagram)
    return 0


if __name__ == "__main__":
    sys.exit(main())
