// gilonce-scenarios: plays every scenario that exists, each in a watchdog child, and
// prints what it shows, the verdict it predicts, the verdict observed and the timeline.
// Exit status 0 only when every observed verdict matches its prediction.
// (The full walkthrough runner replaces this once the walkthrough steps exist.)
#include <pybind11/embed.h>

#include <cstdio>
#include <cstring>

#include "harness/watchdog.hpp"
#include "lazy_object_race.hpp"

int main(int argc, char** argv) {
    const bool quiet = argc > 1 && std::strcmp(argv[1], "--quiet") == 0;
    if (argc > 1 && !quiet) {
        std::fprintf(stderr, "usage: %s [--quiet]\n  --quiet  verdicts only, no timelines\n", argv[0]);
        return 2;
    }
    pybind11::scoped_interpreter interpreter;
    pybind11::gil_scoped_release no_gil;
    int mismatches = 0;
    for (const auto& s : scenarios::all()) {
        harness::outcome out = harness::run_in_child(s.run);
        const bool as_predicted = out.observed == s.predicted;
        mismatches += as_predicted ? 0 : 1;
        std::printf("== %s\n   shows:     %s\n   predicted: %s\n   observed:  %s  [%s]\n", s.name,
                    s.demonstrates, harness::to_string(s.predicted), out.summary().c_str(),
                    as_predicted ? "as predicted" : "NOT AS PREDICTED");
        if (!quiet) std::printf("%s\n", harness::format_timeline(out.events).c_str());
    }
    std::printf("%zu scenarios, %d not as predicted\n", scenarios::all().size(), mismatches);
    return mismatches == 0 ? 0 : 1;
}
