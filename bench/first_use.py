"""Run bench_first_use with repetitions and print what a user pays on first use: each warm
first use next to gil_once_cell's, and the cold two-stage type next to the same type built
eagerly, per number of class attributes; medians with the spread of the repetitions.

usage: first_use.py [--repetitions N] [--smoke] PATH_TO_bench_first_use
"""
import argparse
import json
import re
import subprocess
import sys

WARM = ["first_use_gil_once_cell", "first_use_function_local_static", "first_use_std_call_once",
        "first_use_pybind11"]
ATTRIBUTES = [0, 1, 4, 16, 64]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    cmd = [args.binary, "--benchmark_format=json"]
    cmd += (["--smoke", "--benchmark_min_time=0.01"] if args.smoke else
            [f"--benchmark_repetitions={args.repetitions}", "--benchmark_enable_random_interleaving=true"])
    try:
        report = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        sys.exit(f"first_use.py: could not run {args.binary}: {e}")
    median, samples = {}, {}
    for b in report["benchmarks"]:
        b["run_name"] = re.sub(r"/(min_time|iterations):[^/]*", "", b["run_name"])
        if b.get("error_occurred"):
            sys.exit(f"first_use.py: {b['run_name']} failed: {b.get('error_message')}")
        if args.smoke or b.get("aggregate_name") == "median":
            median[b["run_name"]] = b["real_time"]
        if b.get("run_type") == "iteration":
            samples.setdefault(b["run_name"], []).append(b["real_time"])
    for name, s in samples.items():  # one repetition: no aggregates, the sample is the median
        if len(s) == 1:
            median.setdefault(name, s[0])
    expected = WARM + [f"cold_{kind}_type/{n}" for kind in ("lazy", "eager") for n in ATTRIBUTES]
    missing = [name for name in expected if name not in median]
    if missing:
        sys.exit(f"first_use.py: benchmarks missing from the report: {', '.join(missing)}")
    if args.smoke:
        print(f"{len(median)} benchmarks ran")
        return

    def spread(name):
        s = samples.get(name, [median[name]])
        return (max(s) - min(s)) / median[name] * 100

    print(f"median of {args.repetitions} repetitions, interleaved")
    print(f"{'warm first use':34} {'median ns':>10} {'x cell':>7} {'spread':>7}")
    base = median[WARM[0]]
    for name in WARM:
        print(f"{name:34} {median[name]:10.1f} {median[name] / base:7.2f} {spread(name):6.1f}%")
    print(f"\n{'cold type, N class attributes':34} {'lazy us':>10} {'eager us':>9} {'lazy/eager':>10} {'spread':>7}")
    for n in ATTRIBUTES:
        lazy, eager = median[f"cold_lazy_type/{n}"], median[f"cold_eager_type/{n}"]
        worst = max(spread(f"cold_lazy_type/{n}"), spread(f"cold_eager_type/{n}"))
        print(f"{'N = ' + str(n):34} {lazy / 1000:10.2f} {eager / 1000:9.2f} {lazy / eager:10.2f} {worst:6.1f}%")


if __name__ == "__main__":
    main()
