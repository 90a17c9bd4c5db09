// runner/json_report.cpp: the JSON writer (see json_report.hpp). Hand-written because the
// document is small and flat; trace.schema.json and test_runner.py check its shape.
#include "json_report.hpp"

#include <cstdio>
#include <string>

namespace runner {
namespace {

std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
                    out += escaped;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

std::string number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6f", value);
    return text;
}

const char* kind_name(harness::event_kind kind) {
    switch (kind) {
        case harness::event_kind::waits: return "waits";
        case harness::event_kind::holds: return "holds";
        case harness::event_kind::releases: return "releases";
        case harness::event_kind::passes: return "passes";
        case harness::event_kind::note: return "note";
    }
    return "note";
}

}  // namespace

void write_json(std::ostream& out, const std::vector<played>& results,
                const std::vector<const harness::scenario*>& not_played) {
    int as_predicted = 0;
    out << "{\n  \"schema\": \"gilonce-trace/1\",\n  \"scenarios\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
        const played& p = results[i];
        const bool matches = harness::as_predicted(*p.scenario, p.outcome);
        as_predicted += matches ? 1 : 0;
        out << (i ? "," : "") << "\n    {\n"
            << "      \"step\": " << quoted(p.in_step->id) << ",\n"
            << "      \"name\": " << quoted(p.scenario->name) << ",\n"
            << "      \"demonstrates\": " << quoted(p.scenario->demonstrates) << ",\n"
            << "      \"predicted\": " << quoted(harness::to_string(p.scenario->predicted)) << ",\n"
            << "      \"predicted_details\": [";
        for (std::size_t k = 0; k < p.scenario->expect.size(); ++k)
            out << (k ? ", " : "") << quoted(p.scenario->expect[k]);
        out << "],\n"
            << "      \"observed\": " << quoted(harness::to_string(p.outcome.observed)) << ",\n"
            << "      \"as_predicted\": " << (matches ? "true" : "false") << ",\n"
            << "      \"seconds\": " << number(p.outcome.seconds) << ",\n"
            << "      \"signal\": " << p.outcome.signal << ",\n"
            << "      \"detail\": " << quoted(p.outcome.detail) << ",\n"
            << "      \"summary\": " << quoted(p.outcome.summary()) << ",\n"
            << "      \"events\": [";
        for (std::size_t j = 0; j < p.outcome.events.size(); ++j) {
            const harness::trace_event& e = p.outcome.events[j];
            out << (j ? "," : "") << "\n        {\"t_ms\": " << number(e.t_ns / 1e6)
                << ", \"thread\": " << quoted(e.thread) << ", \"kind\": " << quoted(kind_name(e.kind))
                << ", \"resource\": " << quoted(e.resource) << ", \"text\": " << quoted(e.text) << "}";
        }
        out << (p.outcome.events.empty() ? "]" : "\n      ]") << "\n    }";
    }
    out << "\n  ],\n  \"not_played\": [";
    for (std::size_t i = 0; i < not_played.size(); ++i)
        out << (i ? "," : "") << "\n    {\"step\": " << quoted(not_played[i]->step) << ", \"name\": "
            << quoted(not_played[i]->name) << ", \"reason\": " << quoted(not_played[i]->unavailable) << "}";
    out << (not_played.empty() ? "]" : "\n  ]");
    out << ",\n  \"summary\": {\"played\": " << results.size() << ", \"as_predicted\": " << as_predicted
        << ", \"not_as_predicted\": " << results.size() - as_predicted << ", \"not_played\": " << not_played.size()
        << "}\n}\n";
}

}  // namespace runner
