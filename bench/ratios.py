"""Run bench_fast_path with repetitions and print each benchmark's median as a ratio to the
floor (a plain global read), all measured in the same run, with the spread of the
repetitions (min-max, as a percentage of the median). Repetitions are interleaved in random
order, so a slow moment of the machine does not fall on one peer only.

usage: ratios.py [--repetitions N] [--smoke] PATH_TO_bench_fast_path

--smoke runs each benchmark briefly, once, and only checks that all of them reported.
"""
import argparse
import json
import subprocess
import sys

FLOOR = "floor_global_read"
EXPECTED = [FLOOR, "gil_once_cell_get", "gil_once_cell_get_or_init",
            "gil_once_cell_get_or_try_init", "lazy_type_get",
            "function_local_static_read", "std_call_once_read",
            "pybind11_call_once_and_store_read"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")

    cmd = [args.binary, "--benchmark_format=json"]
    if args.smoke:
        cmd += ["--benchmark_min_time=0.01"]
    else:
        cmd += [f"--benchmark_repetitions={args.repetitions}",
                "--benchmark_enable_random_interleaving=true"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"ratios.py: could not run {args.binary}: {e}")
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError as e:
        sys.exit(f"ratios.py: {args.binary} did not print a Google Benchmark JSON report: {e}")

    times, samples = {}, {}
    for b in report["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"ratios.py: {b['run_name']} failed: {b.get('error_message')}")
        if args.smoke or b.get("aggregate_name") == "median":
            times[b["run_name"]] = b["real_time"]
        if b.get("run_type") == "iteration":
            samples.setdefault(b["run_name"], []).append(b["real_time"])
    for name, s in samples.items():  # one repetition: no aggregates, the sample is the median
        if len(s) == 1:
            times.setdefault(name, s[0])
    missing = [name for name in EXPECTED if name not in times]
    if missing:
        sys.exit(f"ratios.py: benchmarks missing from the report: {', '.join(missing)}")
    if args.smoke:
        print(f"{len(times)} benchmarks ran: {', '.join(times)}")
        return

    ctx = report["context"]
    print(f"{ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs, "
          f"median of {args.repetitions} repetitions")
    print(f"{'benchmark':38} {'median ns':>10} {'x floor':>8} {'spread':>8}")
    floor = times[FLOOR]
    for name in EXPECTED:
        s = samples.get(name, [times[name]])
        spread = (max(s) - min(s)) / times[name] * 100
        print(f"{name:38} {times[name]:10.3f} {times[name] / floor:8.2f} {spread:7.1f}%")


if __name__ == "__main__":
    main()
