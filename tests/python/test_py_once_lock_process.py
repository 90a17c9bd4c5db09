"""py_once_lock in a whole Python process: what exit does to a static cell that daemon
threads are using, and the import-lock cycle an initializer that imports can join.

Each scenario runs in a child interpreter (python -c), under a timeout that only a hang
reaches. Blocked threads are observed, not assumed: a thread counts as blocked when
/proc shows it inside futex() at every sample while the main thread sleeps between
samples (so the GIL is free and a thread waiting only for it would have moved on)."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
pytestmark = pytest.mark.skipif(FUTEX is None, reason="futex syscall number unknown for this machine")

# Shared by the children: observe threads blocked in futex(), by their native ids.
OBSERVE = textwrap.dedent(
    """
    import os, time

    def in_futex(tid):
        try:
            with open(f"/proc/self/task/{tid}/syscall") as f:
                return f.read().split()[0] == "%d"
        except (FileNotFoundError, IndexError):
            return False

    def blocked(tids, samples=20, interval=0.01):
        # True once every thread is seen in futex() at `samples` samples in a row (a thread
        # merely waiting for the GIL gets it while this thread sleeps); False after 10 s.
        seen, deadline = 0, time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = seen + 1 if all(in_futex(t) for t in tids) else 0
            if seen >= samples:
                return True
            time.sleep(interval)
        return False
    """
    % (FUTEX or 0)
)


def run_child(body, timeout, without_leak_check=False):
    """Runs OBSERVE + body in a child python; returns (exit status or None if it hung, output).
    without_leak_check: under AddressSanitizer, no LeakSanitizer pass at exit (its tracer,
    which stops every thread to scan them, crashed on the threads left parked after
    Py_Finalize: a failure of the tool, not of the exit under test)."""
    env = dict(os.environ)
    if without_leak_check and "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    child = subprocess.Popen(
        [sys.executable, "-c", OBSERVE + textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        out, _ = child.communicate(timeout=timeout)
        return child.returncode, out
    except subprocess.TimeoutExpired:
        stuck = describe_threads(child.pid)
        child.kill()
        out, _ = child.communicate()
        return None, out + "\n[still running after %d s; its threads: %s]" % (timeout, stuck)


def describe_threads(pid):
    parts = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                call = f.read().split()[0]
        except (OSError, IndexError):
            call = "?"
        parts.append(f"{tid}: syscall {call}" + (" (futex)" if call == str(FUTEX) else ""))
    return "; ".join(parts)


def test_exit_finishes_while_daemon_threads_are_inside_and_waiting_for_a_static_cell():
    # Thread A is inside the static cell's initializer, blocked with the GIL released; thread B
    # waits for it. Then the main thread returns: Py_Finalize, then exit(), which destroys the
    # static cell. Destroying its condition variable while B waits on it would never return.
    status, out = run_child(
        """
        import threading, gilonce_lock_probe as probe
        inside = threading.Event()
        a = threading.Thread(target=probe.static_cell_blocking, args=(inside.set,), daemon=True)
        a.start()
        inside.wait()
        b_id = []
        def b():
            b_id.append(threading.get_native_id())
            probe.static_cell_blocking(None)
        threading.Thread(target=b, daemon=True).start()
        while not b_id:
            time.sleep(0.001)
        assert blocked(b_id), "B was never seen waiting for the cell"
        print("A inside the initializer, B seen waiting in futex(); the main thread returns", flush=True)
        """,
        timeout=30,
        without_leak_check=True,
    )
    assert status is not None, "the process did not exit:\n" + out
    assert status == 0, out
    assert "B seen waiting in futex(); the main thread returns" in out


def import_race(tmp_path, name, source, events):
    """Writes module `name` (its code `source`) into tmp_path, and returns the start of a
    child that can import it: a module `shared` holding one threading.Event per name in
    `events`, for the module's code and the child's threads to meet on."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return textwrap.dedent(
        f"""
        import sys, threading, types
        sys.path.insert(0, {str(tmp_path)!r})
        shared = types.ModuleType("shared")
        for event in {events!r}:
            setattr(shared, event, threading.Event())
        sys.modules["shared"] = shared
        import gilonce_lock_probe as probe
        """
    )


def test_an_initializer_that_imports_deadlocks_with_a_thread_importing_that_module(tmp_path):
    # The cycle the contract warns of, thread by thread:
    #   T2 imports M (holds M's import lock); M's code waits until T1 has claimed the cell;
    #   T1 claims the cell, its initializer imports M: waits for M's import lock (T2);
    #   T2 (M's code) asks for the cell: waits for T1's initializer.
    start = import_race(
        tmp_path,
        "cycle_module",
        """
        import gilonce_lock_probe as probe, shared
        shared.importing.set()
        shared.claimed.wait()
        probe.import_inside_initializer("cycle_module", None)
        """,
        ["importing", "claimed"],
    )
    status, out = run_child(
        start
        + textwrap.dedent(
            """
        ids, done = {}, []
        def t2():
            ids["T2"] = threading.get_native_id()
            import cycle_module
            done.append("T2")
        def t1():
            ids["T1"] = threading.get_native_id()
            shared.importing.wait()
            probe.import_inside_initializer("cycle_module", shared.claimed.set)
            done.append("T1")
        threading.Thread(target=t2, daemon=True).start()
        threading.Thread(target=t1, daemon=True).start()
        shared.claimed.wait()
        if blocked([ids["T1"], ids["T2"]]) and not done:
            print("deadlocked: T1 and T2 both seen in futex() at 20 samples in a row; neither returned", flush=True)
        else:
            print("not deadlocked: returned", done, flush=True)
        os._exit(0)  # the two threads can never finish: leave without finalizing
        """
        ),
        timeout=60,
    )
    assert status == 0, out
    assert "deadlocked: T1 and T2 both seen in futex()" in out, out


def test_importing_before_asking_for_the_cell_finishes(tmp_path):
    # The recommended shape: T1 imports M first (waits for M's import lock, holding no cell),
    # then asks for the cell. T2, importing M, asks for the cell from M's code, claims it, and
    # finishes the import; then T1 gets M and the cell's value, the same object.
    start = import_race(
        tmp_path,
        "ordered_module",
        """
        import gilonce_lock_probe as probe, shared
        shared.importing.set()
        shared.t1_waits_for_import.wait()
        VALUE = probe.import_before_asking("ordered_module", None)
        """,
        ["importing", "t1_waits_for_import"],
    )
    status, out = run_child(
        start
        + textwrap.dedent(
            """
        ids, got = {}, {}
        def t2():
            import ordered_module
            got["T2"] = ordered_module.VALUE
        def t1():
            ids["T1"] = threading.get_native_id()
            shared.importing.wait()
            got["T1"] = probe.import_before_asking("ordered_module", None)
        threads = [threading.Thread(target=t2), threading.Thread(target=t1)]
        for t in threads:
            t.start()
        shared.importing.wait()
        while "T1" not in ids:
            time.sleep(0.001)
        # T1 is inside the import of ordered_module, waiting for its lock (held by T2).
        assert blocked([ids["T1"]]), "T1 was never seen waiting for the import lock"
        shared.t1_waits_for_import.set()
        for t in threads:
            t.join(20)
        alive = [t for t in threads if t.is_alive()]
        print("finished" if not alive else "hung", "; same module:", got.get("T1") is got.get("T2") is sys.modules["ordered_module"], flush=True)
        os._exit(0 if not alive else 1)
        """
        ),
        timeout=60,
    )
    assert status == 0, out
    assert "finished ; same module: True" in out, out
