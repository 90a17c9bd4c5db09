"""Time a class-attribute lookup from Python: `Color.RED` of the example module's lazy type
(built by gilonce::lazy_type, published straight into an immutable type's dict) next to the
same lookup on a pure-Python class, in one process, repetitions interleaved. Reports the
median of each and the ratio, with the spread of the repetitions; `pass` times timeit's
loop alone, which both lookups include.

usage: class_attribute.py [--repetitions N] [--smoke] DIRECTORY_WITH_colors_MODULE
"""
import argparse
import statistics
import sys
import timeit

LOOKUPS = 200_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module_dir")
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    sys.path.insert(0, args.module_dir)
    try:
        import colors
    except ImportError as e:
        sys.exit(f"class_attribute.py: cannot import the example module from {args.module_dir}: {e}")

    class PyColor:  # the pure-Python peer: a class attribute that is an instance of the class
        pass
    PyColor.RED = PyColor()

    Color = colors.Color
    assert type(Color.RED) is Color and type(PyColor.RED) is PyColor
    peers = {"colors.Color.RED (lazy_type)": "Color.RED", "PyColor.RED (pure Python)": "PyColor.RED",
             "the loop alone (pass)": "pass"}
    timers = {name: timeit.Timer(stmt, globals={"Color": Color, "PyColor": PyColor})
              for name, stmt in peers.items()}
    number = 1_000 if args.smoke else LOOKUPS
    repetitions = 1 if args.smoke else args.repetitions
    samples = {name: [] for name in peers}
    for _ in range(repetitions):
        for name, timer in timers.items():  # interleaved: a slow moment hits both
            samples[name].append(timer.timeit(number) / number * 1e9)
    if args.smoke:
        print("class-attribute lookups ran: " + ", ".join(peers))
        return
    medians = {name: statistics.median(s) for name, s in samples.items()}
    base = medians["PyColor.RED (pure Python)"]
    print(f"{LOOKUPS} lookups per repetition, median of {repetitions} repetitions, interleaved")
    print(f"{'lookup':32} {'median ns':>10} {'x Python':>9} {'spread':>7}")
    for name, s in samples.items():
        spread = (max(s) - min(s)) / medians[name] * 100
        print(f"{name:32} {medians[name]:10.2f} {medians[name] / base:9.2f} {spread:6.1f}%")


if __name__ == "__main__":
    main()
