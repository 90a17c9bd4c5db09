// harness/scenario.hpp: a scenario as the main job lists it and the tests check it.
//
// A scenario is one story a step tells ("two threads ask for the type while the first one
// releases the GIL"), with the verdict the step predicts. It runs in a watchdog child and
// its observed verdict is compared with the prediction by the main job and by ctest.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/watchdog.hpp"

namespace harness {

struct scenario {
    std::string step;          // "01-unsound-lazy-type"
    std::string name;          // "reentrant_call_sees_unready_type": a test-style name
    std::string demonstrates;  // one sentence: what the reader should learn from it
    verdict predicted;
    std::function<scenario_result()> run;
    /// How long the watchdog lets it run when the trace shows no deadlock. Scenarios that
    /// observe a hang the trace cannot prove (a thread waiting for a lock it holds: does the
    /// primitive block, abort or throw?) use a short one.
    watchdog_options watchdog = {};
};

/// Runs `s` in a watchdog child. Requires what run_in_child requires.
inline outcome play(const scenario& s) { return run_in_child(s.run, s.watchdog); }

}  // namespace harness
