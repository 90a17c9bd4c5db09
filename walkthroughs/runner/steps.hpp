// runner/steps.hpp: every step of the course, in order, with its scenarios: the table of
// contents the walkthrough runner plays from.
#pragma once

#include <string>
#include <vector>

#include "harness/scenario.hpp"

namespace runner {

struct step {
    std::string id;     // "02-lock-that-deadlocks": the step's folder name
    std::string title;  // "Fix it with a lock?"
    const std::vector<harness::scenario>* scenarios;
};

/// Every step, in teaching order ("00-foundation" first: the two races of the reference).
const std::vector<step>& all_steps();

/// The step that `key` names: its full id, its number ("2", "02") or the id without its
/// number ("lock-that-deadlocks"). Returns null if none does.
const step* find_step(const std::string& key);

}  // namespace runner
