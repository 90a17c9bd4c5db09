// Step 04's scenarios: a Color whose RED and GREEN are Colors, built in one stage.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step04 {

/// Color has DEFAULT_NAME (its factory releases the GIL), RED and GREEN (Colors). Predicted:
/// finished, with the RuntimeError naming step04.Color.RED and the re-entrancy as cause.
harness::scenario_result recursive_attribute_is_a_clear_error();

/// The same Color without RED and GREEN builds fine. Predicted: finished.
harness::scenario_result attributes_that_are_not_colors_work();

/// Both, with their predictions.
const std::vector<harness::scenario>& scenarios();

}  // namespace step04
