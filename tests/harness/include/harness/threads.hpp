// harness/threads.hpp: run a scenario's named threads, each holding the GIL, and join them.
//
// Each thread takes the GIL (traced), runs its body with a `gil_token`, and releases the
// GIL when the body returns. The body releases the GIL only at explicit hook points
// (`without_gil`), so the interleaving is decided by events, not by the scheduler.
#pragma once

#include <gilonce/gil_token.hpp>

#include <functional>
#include <string>
#include <vector>

namespace harness {

struct scenario_thread {
    std::string name;                             // "A", "B": the name in the trace
    std::function<void(gilonce::gil_token)> body; // runs with the GIL held
};

/// Starts every thread, waits for all of them, then rethrows the first exception any
/// body threw (prefixed with the thread's name).
/// Requires: the interpreter is initialized. The caller may hold the GIL: it is released
/// while the threads run and taken back before returning.
void run_threads(const std::vector<scenario_thread>& threads);

}  // namespace harness
