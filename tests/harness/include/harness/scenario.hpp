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
    /// The details that make the point, each of which the observed detail must contain:
    /// who held what, which exception and message, how many builds ran, what each thread got.
    std::vector<std::string> expect;
    std::function<scenario_result()> run;
    /// How long the watchdog lets it run when the trace shows no deadlock. Scenarios that
    /// observe a hang the trace cannot prove (a thread waiting for a lock it holds: does the
    /// primitive block, abort or throw?) use a short one.
    watchdog_options watchdog = {};
    /// Why this build cannot play the scenario ("" if it can): a scenario that needs
    /// own-GIL sub-interpreters says so on Python 3.11. The main job lists it as not
    /// played, with this reason, and the tests report it as skipped; it is never counted
    /// as "as predicted".
    std::string unavailable = {};
};

/// Runs `s` in a watchdog child. Requires what run_in_child requires.
inline outcome play(const scenario& s) { return run_in_child(s.run, s.watchdog); }

/// The expected details that `o` does not show (empty when all are there): in its summary
/// (the verdict, a crash's signal, the detail) or, for a crash, in what the child wrote to
/// stderr (a sanitizer's report).
inline std::vector<std::string> missing_details(const scenario& s, const outcome& o) {
    std::vector<std::string> missing;
    const std::string seen = o.summary() + (o.observed == verdict::crashed ? "\n" + o.child_stderr : "");
    for (const auto& detail : s.expect)
        if (seen.find(detail) == std::string::npos) missing.push_back(detail);
    return missing;
}

/// The prediction holds: the predicted verdict, with every expected detail.
inline bool as_predicted(const scenario& s, const outcome& o) {
    return o.observed == s.predicted && missing_details(s, o).empty();
}

/// The prediction in one line: "deadlocked, with «A holds ...»; «B holds ...»".
inline std::string describe_prediction(const scenario& s) {
    std::string out = to_string(s.predicted);
    for (std::size_t i = 0; i < s.expect.size(); ++i) out += (i ? "; «" : ", with «") + s.expect[i] + "»";
    return out;
}

}  // namespace harness
