// harness/watchdog.hpp: run a scenario in a forked child and report what happened as a value.
//
// A scenario that may deadlock must never hang the test suite. It runs in a child process
// whose trace lives in shared memory; the parent watches the trace and the child, and
// returns one of: finished, deadlocked (a wait-for cycle in the trace whose threads are
// observed blocked in futex() with no progress for a settle time, or no exit before the
// deadline with the threads' state as evidence), crashed (killed by a signal), or wrong result.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "harness/trace.hpp"

namespace harness {

/// What a scenario reports when it ran to completion.
struct scenario_result {
    bool ok = true;
    std::string detail;
    static scenario_result pass(std::string detail = {}) { return {true, std::move(detail)}; }
    static scenario_result fail(std::string detail) { return {false, std::move(detail)}; }
};

enum class verdict { finished, deadlocked, crashed, wrong_result };
const char* to_string(verdict v) noexcept;

struct outcome {
    verdict observed = verdict::finished;
    double seconds = 0;            // from fork to the verdict
    int signal = 0;                // for `crashed`
    std::string detail;            // the scenario's detail, the deadlock cycle, the error, or
                                   // for `crashed` the last line the child wrote to stderr
    std::vector<trace_event> events;
    std::string child_stderr;      // everything the child wrote to stderr

    /// One line: "deadlocked after 0.012 s: A holds once-lock and waits for GIL; ..."
    std::string summary() const;
};

struct watchdog_options {
    /// When a child that neither exits nor shows a confirmed deadlock is called hung: at the
    /// deadline if all its threads are blocked in futex(), else at four deadlines. Only
    /// bounds a hang: a confirmed deadlock is reported as soon as it is confirmed.
    std::chrono::milliseconds deadline = std::chrono::seconds(10);
    /// How long a wait-for cycle in the trace must stand, with every thread in it seen
    /// blocked in futex() (a lock wait, per /proc/<pid>/task/<tid>/syscall) at every sample
    /// and no new trace event, before the child is called deadlocked.
    std::chrono::milliseconds settle = std::chrono::milliseconds(100);
};

/// Forks; the child runs `scenario` (with the GIL released and the trace recording into
/// shared memory) and exits without finalizing Python. The parent returns the outcome.
/// Requires: the interpreter is initialized and no other thread of this process is
/// running Python code (fork copies only the calling thread). The caller may hold the GIL.
outcome run_in_child(const std::function<scenario_result()>& scenario,
                     watchdog_options options = {});

}  // namespace harness
