"""Runs the reference example's Python tests (reference/examples/test_colors.py) and step
07's (walkthroughs/07-no-gil/test_step07.py) on a free-threaded CPython named by the
environment variable GILONCE_FT_PYTHON, with the GIL off (-X gil=0): colors.cpp is
compiled against that interpreter's own headers, with its own Py_GIL_DISABLED
pyconfig.h, into a temporary directory, and the step07 module is built there by CMake
configured for that interpreter (it needs pybind11 installed for it, and Catch2 and
Google Benchmark, which tools/bootstrap installs).

No registry this project uses ships a free-threaded interpreter, so without the variable
this prints "not run: ..." (ctest shows the test as skipped) and exits 0. With it, it
fails clearly when the interpreter is not free-threaded, cannot compile the module, or
lacks pytest, and otherwise exits with pytest's status.

--any-build skips the free-threaded check: the suite uses it to run this very pipeline on
its own (GIL) interpreter, so the runner is tested even where no free-threaded one exists.

usage: run_on_ft_python.py [--root DIR] [--compiler CXX] [--any-build]"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile


def query(python, code):
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[2]), help="the checkout")
    parser.add_argument("--compiler", default=os.environ.get("CXX", "g++"), help="the C++ compiler")
    parser.add_argument("--any-build", action="store_true", help="accept a GIL build too (self-test)")
    parser.add_argument("--colors-only", action="store_true", help="skip step 07 (no CMake build)")
    args = parser.parse_args(argv)
    python = os.environ.get("GILONCE_FT_PYTHON")
    if not python:
        print("not run: GILONCE_FT_PYTHON is not set (it names a free-threaded CPython, 3.13t or later; "
              "none is available from the registries this project uses)")
        return 0
    if shutil.which(python) is None and not os.access(python, os.X_OK):
        print(f"run_on_ft_python: GILONCE_FT_PYTHON={python!r} is not an executable", file=sys.stderr)
        return 2
    try:
        gil_disabled = query(python, "import sysconfig; print(sysconfig.get_config_var('Py_GIL_DISABLED'))")
        include = query(python, "import sysconfig; print(sysconfig.get_paths()['include'])")
        suffix = query(python, "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
        has_pytest = query(python, "import importlib.util; print(importlib.util.find_spec('pytest') is not None)")
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"run_on_ft_python: cannot ask {python} about itself: {error}", file=sys.stderr)
        return 2
    if gil_disabled != "1" and not args.any_build:
        print(f"run_on_ft_python: {python} is not a free-threaded build (Py_GIL_DISABLED is {gil_disabled})",
              file=sys.stderr)
        return 2
    if has_pytest != "True":
        print(f"run_on_ft_python: {python} has no pytest (install it for that interpreter)", file=sys.stderr)
        return 2
    root = pathlib.Path(args.root)
    with tempfile.TemporaryDirectory(prefix="gilonce-ft-") as work:
        module = pathlib.Path(work) / f"colors{suffix}"
        compile_cmd = [args.compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                       f"-I{root / 'reference' / 'include'}", f"-I{include}",
                       str(root / "reference" / "examples" / "colors.cpp"), "-o", str(module)]
        print("compiling:", " ".join(compile_cmd), flush=True)
        if subprocess.run(compile_cmd).returncode != 0:
            print("run_on_ft_python: colors.cpp does not compile for the free-threaded interpreter", file=sys.stderr)
            return 1
        env = dict(os.environ, PYTHONPATH=work)
        gil_off = ["-X", "gil=0"] if gil_disabled == "1" else []
        test_cmd = [python, *gil_off, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    str(root / "reference" / "examples" / "test_colors.py")]
        print("running:", " ".join(test_cmd), flush=True)
        status = subprocess.run(test_cmd, env=env).returncode
        if status != 0 or args.colors_only:
            return status
        return run_step07(python, root, pathlib.Path(work), gil_off)


def run_step07(python, root, work, gil_off):
    """Builds the step07 module with CMake for `python` and runs test_step07.py on it."""
    version = query(python, "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
    build = work / "build"
    configure = ["cmake", "-S", str(root), "-B", str(build), "-G", "Ninja", f"-DPython_EXECUTABLE={python}",
                 f"-DGILONCE_PYTHON_VERSION={version}", "-DCMAKE_BUILD_TYPE=Debug", "-DGILONCE_DOCS=OFF"]
    for step, cmd in (("configure", configure), ("build", ["cmake", "--build", str(build), "--target", "step07"])):
        print(f"{step}:", " ".join(cmd), flush=True)
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
            print(f"run_on_ft_python: the step07 module's CMake {step} failed for {python} "
                  "(is pybind11 installed for it?)", file=sys.stderr)
            return 1
    module_dir = build / "walkthroughs" / "07-no-gil"
    env = dict(os.environ, PYTHONPATH=str(module_dir))
    test_cmd = [python, *gil_off, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                str(root / "walkthroughs" / "07-no-gil" / "test_step07.py")]
    print("running:", " ".join(test_cmd), flush=True)
    return subprocess.run(test_cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
