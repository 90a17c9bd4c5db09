// gilonce-walkthrough: the main job. Plays the scenarios of the course's steps, each in a
// watchdog child, and reports for each one what it demonstrates, the verdict it predicts,
// the verdict observed and the narrated timeline of who took, released and waited for
// which lock -- as text to read, or as JSON traces for tools (the docs' diagrams).
#include <pybind11/embed.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "harness/scenario.hpp"
#include "json_report.hpp"
#include "steps.hpp"

namespace {

constexpr const char* usage_text = R"(usage: gilonce-walkthrough [run|list] [STEP...] [options]

Plays the walkthrough of gilonce: sound lazy initialization for CPython extensions.
Each step is a folder under walkthroughs/; each scenario tells one story of it (two threads
ask for a type while one releases the GIL; a class attribute asks for its own class...)
and predicts how it ends. Every scenario runs in a child process under a watchdog, so one
that deadlocks is reported, never waited for. The trace gives a hypothesis (a cycle of
threads, each waiting for a lock the next one holds); the verdict waits for observation:
the cycle's threads seen blocked in a lock wait and staying so. A hang without such a
cycle is reported past the deadline, with what each thread was seen doing.

commands:
  run               play the scenarios of STEP... (default: every step)   [default]
  list              list the steps and their scenarios, with what each predicts

steps are named by number (2 or 02), folder (02-lock-that-deadlocks) or slug
(lock-that-deadlocks); 00 is the foundation: gil_once_cell against a function-local static.

options:
  --scenario NAME   play only the scenario NAME of the selected steps
  --format FORMAT   text (default): a narrated report to read
                    json: the outcomes and their traces (schema gilonce-trace/1)
  --output FILE     write the report to FILE instead of standard output
  --quiet           text format only: verdicts, without the timelines
  -h, --help        show this help

verdicts:
  finished          the scenario ran to the end and its checks passed
  deadlocked        it never ended: the report says who holds what and waits for what
  crashed           the child was killed by a signal (an abort, a segfault)
  wrong result      it ended, but what it saw was wrong (a type that is not ready...)

A scenario this build cannot play (own-GIL sub-interpreters need Python 3.12+; the
main job's build uses 3.11) is listed as not played, with the reason, and not counted.

exit status: 0 when every observed verdict is the predicted one, 1 when one is not,
2 for a usage error or a scenario asked for by name that this build cannot play.

examples:
  gilonce-walkthrough                           play every step
  gilonce-walkthrough run 2 3                   steps 02 and 03
  gilonce-walkthrough run 02 --scenario static_two_threads_deadlock
  gilonce-walkthrough list
  gilonce-walkthrough --format json --output traces.json
)";

struct options {
    std::string command = "run";
    std::vector<const runner::step*> steps;
    std::string scenario;
    std::string format = "text";
    std::string output;
    bool quiet = false;
};

// Prints `message` and a hint, returns the usage-error status.
int usage_error(const std::string& message) {
    std::fprintf(stderr, "gilonce-walkthrough: %s\n(try: gilonce-walkthrough --help)\n", message.c_str());
    return 2;
}

// Parses argv into `opts`; returns -1 to go on, or an exit status.
int parse(int argc, char** argv, options& opts) {
    bool command_seen = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (arg == "-h" || arg == "--help") {
            std::fputs(usage_text, stdout);
            return 0;
        } else if (arg == "--quiet") {
            opts.quiet = true;
        } else if (arg == "--format" || arg == "--output" || arg == "--scenario") {
            const char* v = value();
            if (v == nullptr) return usage_error(arg + " needs a value");
            if (arg == "--format") opts.format = v;
            else if (arg == "--output") opts.output = v;
            else opts.scenario = v;
        } else if (!arg.empty() && arg[0] == '-') {
            return usage_error("unknown option '" + arg + "'");
        } else if (!command_seen && opts.steps.empty() && (arg == "run" || arg == "list")) {
            opts.command = arg;
            command_seen = true;
        } else if (const runner::step* s = runner::find_step(arg)) {
            opts.steps.push_back(s);
        } else {
            std::string known;
            for (const auto& each : runner::all_steps()) known += "\n  " + each.id;
            return usage_error("unknown step '" + arg + "'; the steps are:" + known);
        }
    }
    if (opts.format != "text" && opts.format != "json")
        return usage_error("unknown format '" + opts.format + "' (text or json)");
    if (opts.steps.empty())
        for (const auto& s : runner::all_steps()) opts.steps.push_back(&s);
    if (!opts.scenario.empty()) {
        bool found = false;
        for (const runner::step* s : opts.steps)
            for (const auto& sc : *s->scenarios) found = found || sc.name == opts.scenario;
        if (!found) return usage_error("no scenario named '" + opts.scenario + "' in the selected steps");
    }
    return -1;
}

void print_list(std::ostream& out, const options& opts) {
    for (const runner::step* s : opts.steps) {
        out << s->id << ": " << s->title << "\n";
        for (const auto& sc : *s->scenarios) {
            out << "  " << sc.name << "  [predicts: " << harness::describe_prediction(sc) << "]\n      "
                << sc.demonstrates << "\n";
            if (!sc.unavailable.empty()) out << "      (" << sc.unavailable << ")\n";
        }
    }
}

// The narrated report of one scenario.
void print_played(std::ostream& out, const runner::played& p, bool quiet) {
    const bool matches = harness::as_predicted(*p.scenario, p.outcome);
    out << "   shows:     " << p.scenario->demonstrates << "\n"
        << "   predicted: " << harness::describe_prediction(*p.scenario) << "\n"
        << "   observed:  " << p.outcome.summary() << "\n"
        << "   -> " << (matches ? "as predicted" : "NOT AS PREDICTED") << "\n";
    if (p.outcome.observed != p.scenario->predicted)
        out << "      the verdict is " << harness::to_string(p.outcome.observed) << ", not "
            << harness::to_string(p.scenario->predicted) << "\n";
    for (const auto& missing : harness::missing_details(*p.scenario, p.outcome))
        out << "      missing from what was observed: «" << missing << "»\n";
    if (!quiet && !p.outcome.events.empty())
        out << "   timeline (ms since the child started; thread, what it did):\n"
            << harness::format_timeline(p.outcome.events);
    out << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    options opts;
    if (int status = parse(argc, argv, opts); status >= 0) return status;

    std::ofstream file;
    if (!opts.output.empty()) {
        file.open(opts.output);
        if (!file) return usage_error("cannot write '" + opts.output + "'");
    }
    std::ostream& out = opts.output.empty() ? std::cout : file;
    if (opts.command == "list") {
        print_list(out, opts);
        return 0;
    }

    std::vector<std::pair<const runner::step*, const harness::scenario*>> queue;
    std::vector<const harness::scenario*> not_played;  // this build cannot play them
    for (const runner::step* s : opts.steps)
        for (const auto& sc : *s->scenarios)
            if (opts.scenario.empty() || sc.name == opts.scenario)
            {
                if (sc.unavailable.empty()) queue.emplace_back(s, &sc);
                else not_played.push_back(&sc);
            }

    // A scenario asked for by name that this build cannot play: say why, and do not pass.
    if (!opts.scenario.empty() && queue.empty() && !not_played.empty()) {
        std::fprintf(stderr, "gilonce-walkthrough: scenario '%s' cannot be played by this build: %s\n",
                     opts.scenario.c_str(), not_played.front()->unavailable.c_str());
        return 2;
    }

    pybind11::scoped_interpreter interpreter;
    pybind11::gil_scoped_release no_gil;  // scenarios' threads take the GIL themselves
    std::vector<runner::played> results;
    const runner::step* current_step = nullptr;
    const bool text_to_stdout = opts.format == "text" && opts.output.empty();
    for (std::size_t i = 0; i < queue.size(); ++i) {
        const auto [s, sc] = queue[i];
        if (opts.format == "text" && s != current_step) {
            out << "##### " << s->id << ": " << s->title << "\n\n";
            current_step = s;
        }
        char progress[160];
        std::snprintf(progress, sizeof progress, "[%zu/%zu] %s / %s", i + 1, queue.size(), s->id.c_str(),
                      sc->name.c_str());
        // Progress goes where the reader is looking: into the report itself, or to stderr
        // when the report is JSON or a file.
        if (text_to_stdout) out << "== " << progress << "\n" << std::flush;
        else std::fprintf(stderr, "%s ...", progress);
        results.push_back({s, sc, harness::play(*sc)});
        const bool matches = harness::as_predicted(*sc, results.back().outcome);
        if (!text_to_stdout)
            std::fprintf(stderr, " %s (%s)\n", harness::to_string(results.back().outcome.observed),
                         matches ? "as predicted" : "NOT as predicted");
        if (opts.format == "text") {
            if (!text_to_stdout) out << "== " << progress << "\n";
            print_played(out, results.back(), opts.quiet);
        }
    }
    int mismatches = 0;
    for (const auto& r : results) mismatches += harness::as_predicted(*r.scenario, r.outcome) ? 0 : 1;
    if (opts.format == "json") {
        runner::write_json(out, results, not_played);
    } else {
        for (const harness::scenario* sc : not_played)
            out << "== not played: " << sc->step << " / " << sc->name << "\n   " << sc->unavailable << "\n";
        if (!not_played.empty())
            out << "   (play them against Python 3.13 or 3.14: tools/main --root py313, or --root py314)\n\n";
        out << results.size() << " scenarios played, " << results.size() - mismatches << " as predicted, "
            << mismatches << " not as predicted";
        if (!not_played.empty()) out << "; " << not_played.size() << " not played on this build (see above)";
        out << "\n";
    }
    if (!opts.output.empty())
        std::fprintf(stderr, "%zu scenarios played, %d not as predicted, %zu not played on this build; report written to %s\n",
                     results.size(), mismatches, not_played.size(), opts.output.c_str());
    return mismatches == 0 ? 0 : 1;
}
