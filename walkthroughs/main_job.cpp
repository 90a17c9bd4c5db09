// gilonce-walkthrough: plays every scenario of every step, each in a watchdog child, and
// prints what it shows, the verdict it predicts, the verdict observed and the timeline of
// who took, released and waited for which lock. Exit status 0 only when every observed
// verdict matches its prediction. (A fuller runner, with step selection and JSON traces,
// is tracked as its own issue.)
#include <pybind11/embed.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "harness/scenario.hpp"
#include "lazy_object_race.hpp"
#include "../01-unsound-lazy-type/scenarios.hpp"
#include "../02-lock-that-deadlocks/scenarios.hpp"
#include "../03-gil-as-the-lock/scenarios.hpp"
#include "../04-recursive-class-attributes/scenarios.hpp"
#include "../05-two-stage-initialization/scenarios.hpp"

int main(int argc, char** argv) {
    const bool quiet = argc > 1 && std::strcmp(argv[1], "--quiet") == 0;
    if (argc > 2 || (argc == 2 && !quiet)) {
        std::fprintf(stderr, "usage: %s [--quiet]\n  --quiet  verdicts only, no timelines\n", argv[0]);
        return 2;
    }
    std::vector<const std::vector<harness::scenario>*> steps{&scenarios::all(), &step01::scenarios(), &step02::scenarios(), &step03::scenarios(), &step04::scenarios(), &step05::scenarios()};
    pybind11::scoped_interpreter interpreter;
    pybind11::gil_scoped_release no_gil;
    int played = 0, mismatches = 0;
    for (const auto* step : steps) {
        for (const auto& s : *step) {
            harness::outcome out = harness::play(s);
            const bool as_predicted = out.observed == s.predicted;
            ++played;
            mismatches += as_predicted ? 0 : 1;
            std::printf("== %s / %s\n   shows:     %s\n   predicted: %s\n   observed:  %s\n   -> %s\n",
                        s.step.c_str(), s.name.c_str(), s.demonstrates.c_str(),
                        harness::to_string(s.predicted), out.summary().c_str(),
                        as_predicted ? "as predicted" : "NOT AS PREDICTED");
            if (!quiet) std::printf("%s\n", harness::format_timeline(out.events).c_str());
        }
    }
    std::printf("%d scenarios played, %d as predicted, %d not as predicted\n", played,
                played - mismatches, mismatches);
    return mismatches == 0 ? 0 : 1;
}
