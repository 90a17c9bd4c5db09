// runner/json_report.hpp: outcomes as JSON, in the schema of trace.schema.json
// ("gilonce-trace/1"). The docs build renders these traces as sequence diagrams.
#pragma once

#include <ostream>
#include <vector>

#include "harness/scenario.hpp"
#include "steps.hpp"

namespace runner {

struct played {
    const step* in_step;
    const harness::scenario* scenario;
    harness::outcome outcome;
};

/// Writes every played scenario, with its events, as one JSON document.
void write_json(std::ostream& out, const std::vector<played>& results,
                const std::vector<const harness::scenario*>& not_played);

}  // namespace runner
