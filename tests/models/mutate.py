"""The mutation suite of the SPIN models: every mutant of models/mutants.toml must be killed.

A mutant is one plausible mistake in the C++ of a header, written as a small edit of the
model that stands for it (models/mutants.toml says which line and why). For each, this
applies the edits to a copy of the model in a temporary directory, runs the passes that
tests/models/run_spin.py runs (safety, then liveness if the model has an LTL formula; the
same search bounds), and reads which pass found which error. It prints one table row per
mutant: name | stands for | killed by (pass, property) | states | seconds.

Exits non-zero when an unmutated model the mutants use does not hold, when a mutant
survives (no pass finds an error, or a search is incomplete), when a mutant is killed by
another pass or property than its `killed_by` (both are printed), or when an edit's
fragment is not found exactly once in the model (the mutant is named).

usage: mutate.py [--mutants FILE] [--models DIR] [--only NAME]... [--jobs N] [--markdown]
"""
import argparse
import concurrent.futures
import contextlib
import pathlib
import re
import shutil
import sys
import tempfile
import time
import tomllib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run_spin  # noqa: E402  (the suite's passes, flags and output parser)

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = ("assertion", "invalid end state", "acceptance cycle")


class MutantError(Exception):
    """A mutant that cannot be applied: its list entry is wrong or the model changed."""


def load(path):
    """The mutants of a TOML file, each checked for the fields it needs."""
    data = tomllib.loads(pathlib.Path(path).read_text())
    mutants = data.get("mutant", [])
    names = set()
    for m in mutants:
        missing = [k for k in ("name", "model", "stands_for", "edits", "killed_by") if k not in m]
        if missing:
            raise MutantError(f"mutant {m.get('name', '?')}: missing {', '.join(missing)}")
        if m["name"] in names:
            raise MutantError(f"mutant {m['name']}: listed twice")
        names.add(m["name"])
        m.setdefault("defines", [])
        expected_killer(m)  # fails early on a malformed killed_by
    return mutants


def apply_edits(name, text, edits):
    """The model text with each [from, to] edit applied; `from` must occur exactly once."""
    if not edits:
        raise MutantError(f"mutant {name}: no edits")
    for edit in edits:
        if len(edit) != 2:
            raise MutantError(f"mutant {name}: an edit is [from, to], got {edit!r}")
        old, new = edit
        count = text.count(old)
        if count != 1:
            raise MutantError(f"mutant {name}: fragment found {count} times (wanted once): {old!r}")
        if old == new:
            raise MutantError(f"mutant {name}: an edit that changes nothing: {old!r}")
        text = text.replace(old, new)
    return text


def squeeze(expression):
    """An assertion's expression as compared: blanks left out."""
    return re.sub(r"\s", "", expression)


def assertion_at(source_line):
    """The expression of the first assert(...) on a line of the model, as written there."""
    start = source_line.find("assert(")
    if start < 0:
        return None
    depth, i = 0, start + len("assert")
    for j in range(i, len(source_line)):
        depth += {"(": 1, ")": -1}.get(source_line[j], 0)
        if depth == 0:
            return source_line[i + 1:j]
    return None


def source_of_assertion(model_name, flags, work, model_text):
    """(line number, expression as written) of the assertion pan's trail violates, from a
    replay of the trail (spin -t names the model line; pan prints the expression only as
    spin rewrote it, with macros and mtype names replaced by numbers)."""
    _, out = run_spin.run(["spin", *flags, "-t", model_name], work)
    m = re.search(r"spin: \S+:(\d+), Error: assertion violated", out)
    if not m:
        return None, None
    number = int(m.group(1))
    lines = model_text.splitlines()
    return number, (assertion_at(lines[number - 1]) if 0 < number <= len(lines) else None)


def expected_killer(mutant):
    """(pass, kind, expression or None) from a mutant's killed_by."""
    m = re.fullmatch(r"\s*(safety|liveness)\s*:\s*(assertion|invalid end state|acceptance cycle)\s*(.*?)\s*",
                     mutant["killed_by"])
    if not m or (m.group(2) == "assertion") != bool(m.group(3)):
        raise MutantError(f"mutant {mutant['name']}: killed_by must read 'safety: assertion EXPR', "
                          f"'safety: invalid end state' or 'liveness: acceptance cycle', got {mutant['killed_by']!r}")
    return m.group(1), m.group(2), (m.group(3) or None)


def first_error(output):
    """(kind, expression or None, pan's line) of the first error pan reported, or None."""
    for line in output.splitlines():
        if not line.startswith("pan:"):
            continue
        if m := re.match(r"pan:\d+: assertion violated (.*?)(?: \(at depth \d+\))?$", line):
            return "assertion", m.group(1), line
        for kind in KINDS[1:]:
            if kind in line:
                return kind, None, line
    return None


def verify(model_text, model_name, defines, work, depth, memlim, stop_at_first=True):
    """Runs the suite's passes on one model text in work/. Returns a result dict: the pass
    that found an error (or None), the error, states stored and seconds per pass."""
    work.mkdir(parents=True, exist_ok=True)
    (work / model_name).write_text(model_text)
    flags = [f"-D{d}" for d in defines]
    start = time.monotonic()
    code, out = run_spin.run(["spin", *flags, "-a", model_name], work)
    if code != 0 or not (work / "pan.c").exists() or "Error" in out:
        return {"killer": ("spin", "syntax", None, out.strip().splitlines()[-1] if out.strip() else "spin failed"),
                "passes": [], "seconds": time.monotonic() - start, "incomplete": []}
    result = {"killer": None, "passes": [], "incomplete": []}
    for name, cflags, runflags in run_spin.passes(model_text, depth):
        binary = f"pan_{name}"
        code, out = run_spin.run(["gcc", "-O2", f"-DMEMLIM={memlim}", *cflags, "-o", binary, "pan.c"], work)
        if code != 0:
            result["killer"] = (name, "gcc", None, out.strip().splitlines()[-1])
            break
        code, out = run_spin.run([f"./{binary}", *runflags], work)
        (work / f"{binary}.out").write_text(out)
        parsed = run_spin.parse(out)
        result["passes"].append((name, parsed["stored"], parsed["seconds"]))
        error = first_error(out)
        if parsed["errors"] not in (None, "0") and error:
            kind, expression, line = error
            if kind == "assertion":
                number, written = source_of_assertion(model_name, flags, work, model_text)
                if written:
                    expression = f"{written} (line {number})"
            result["killer"] = (name, kind, expression, line)
            if stop_at_first:
                break
        elif parsed["errors"] is None:
            result["killer"] = (name, "no search", None, out.strip().splitlines()[-1] if out.strip() else "")
            break
        elif parsed["truncated"]:
            result["incomplete"].append(f"{name}: {'; '.join(parsed['truncated'])}")
    result["seconds"] = time.monotonic() - start
    return result


def describe(killer):
    if killer is None:
        return "SURVIVED"
    name, kind, expression, _ = killer
    return f"{name}: {kind}" + (f" {expression}" if expression else "")


def judge(mutant, result):
    """None if the mutant was killed as listed, else why not."""
    killer = result["killer"]
    if killer is None:
        why = "survived: no pass found an error"
        if result["incomplete"]:
            why += f" (and the search was incomplete: {', '.join(result['incomplete'])})"
        return why
    want_pass, want_kind, want_expr = expected_killer(mutant)
    got_pass, got_kind, got_expr, _ = killer
    if got_kind not in KINDS:
        return f"not a property: {describe(killer)}: {killer[3]}"
    if (got_pass, got_kind) != (want_pass, want_kind) or \
            (want_expr is not None and squeeze(want_expr) != squeeze(re.sub(r" \(line \d+\)$", "", got_expr or ""))):
        return f"killed by another property: listed '{mutant['killed_by']}', found '{describe(killer)}'"
    return None


def states(result):
    return " + ".join(f"{s}" for _, s, _ in result["passes"]) or "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=pathlib.Path, default=ROOT / "models" / "mutants.toml")
    parser.add_argument("--models", type=pathlib.Path, default=ROOT / "models", help="where the models are")
    parser.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    parser.add_argument("--keep", type=pathlib.Path, help="work here and keep pan's files and trails (default: a temp dir)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once (at most 2)")
    parser.add_argument("--depth", type=int, default=100000, help="pan -m, as run_spin.py (default 100000)")
    parser.add_argument("--memlim", type=int, default=2048, help="pan's memory bound in MB, as run_spin.py")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    figure = parser.add_mutually_exclusive_group()
    figure.add_argument("--write-figure", type=pathlib.Path,
                        help="write the docs' table (mutant, what it stands for, what killed it) to this file")
    figure.add_argument("--check-figure", type=pathlib.Path,
                        help="fail if this file is not the docs' table this run would write")
    args = parser.parse_args(argv)
    if (args.write_figure or args.check_figure) and args.only:
        parser.exit(2, "mutate.py: the docs' table needs every mutant: no --only with --write-figure/--check-figure\n")
    if shutil.which("spin") is None:
        parser.exit(2, "mutate.py: spin is not installed (tools/bootstrap installs it)\n")
    jobs = max(1, min(args.jobs, 2))
    try:
        mutants = load(args.mutants)
        if args.only:
            unknown = set(args.only) - {m["name"] for m in mutants}
            if unknown:
                raise MutantError(f"no such mutant: {', '.join(sorted(unknown))}")
            mutants = [m for m in mutants if m["name"] in args.only]
        texts = {}
        for m in mutants:
            path = args.models / m["model"]
            if not path.exists():
                raise MutantError(f"mutant {m['name']}: no model {path}")
            texts.setdefault(m["model"], path.read_text())
            m["text"] = apply_edits(m["name"], texts[m["model"]], m["edits"])
    except MutantError as e:
        print(f"FAIL: {e}")
        return 2

    failures = []
    keep = contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(prefix="gilonce-mutants-")
    with keep as tmp, concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        tmp = pathlib.Path(tmp)
        # The unmutated models first: a mutant means nothing against a model that fails.
        configs = sorted({(m["model"], tuple(m["defines"])) for m in mutants})
        base = {c: pool.submit(verify, texts[c[0]], c[0], c[1], tmp / f"base-{i}", args.depth, args.memlim, False)
                for i, c in enumerate(configs)}
        for (model, defines), future in base.items():
            r = future.result()
            label = f"{model} {' '.join('-D' + d for d in defines)}".strip()
            detail = ", ".join(f"{n} {s} states {t} s" for n, s, t in r["passes"])
            if r["killer"] or r["incomplete"]:
                failures.append(f"unmutated {label} does not hold: {describe(r['killer'])} {r['incomplete']}")
                print(f"FAIL: unmutated {label}: {describe(r['killer'])} {'; '.join(r['incomplete'])}")
            else:
                print(f"ok: unmutated {label} holds ({detail})")
        if failures:
            print("\n".join(failures))
            return 1
        futures = [pool.submit(verify, m["text"], m["model"], m["defines"], tmp / m["name"],
                               args.depth, args.memlim) for m in mutants]
        rows = []
        for m, future in zip(mutants, futures):
            r = future.result()
            why = judge(m, r)
            if why:
                failures.append(f"{m['name']}: {why}")
            defines = " ".join("-D" + d for d in m["defines"])
            rows.append((f"{m['name']} ({m['model']}{' ' + defines if defines else ''})", m["stands_for"],
                         describe(r["killer"]) + ("" if not why else "  << " + why), states(r),
                         f"{r['seconds']:.1f}"))
    # The docs' table: what each mutant stands for and what killed it (no states or seconds,
    # which vary with SPIN's version and the machine), so a change of the list, of a model or
    # of what catches a mutant shows as a difference.
    figure_text = ("<!-- written by tests/models/mutate.py --write-figure; checked by ctest (label models) -->\n"
                   "| mutant | stands for | killed by (pass, property) |\n|---|---|---|\n" +
                   "".join("| " + " | ".join(c.replace("|", "\\|") for c in row[:3]) + " |\n" for row in rows))
    header = ("mutant", "stands for", "killed by (pass, property)", "states", "seconds")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    else:
        for row in [header, *rows]:
            print(" | ".join(row))
    killed = len(rows) - len(failures)
    print(f"\n{killed} of {len(rows)} mutants killed as listed")
    if args.write_figure and not failures:
        args.write_figure.write_text(figure_text)
        print(f"wrote {args.write_figure}")
    if args.check_figure and (not args.check_figure.exists() or args.check_figure.read_text() != figure_text):
        failures.append(f"{args.check_figure} is not this run's table: run tests/models/mutate.py "
                        f"--write-figure {args.check_figure}")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
