// Step 03's scenarios: step 02's deadlocking race, replayed on the small form
// (minimal_gil_once_cell) and on gil_lazy_type; then recursion on gil_lazy_type.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step03 {

/// The small form, minimal_gil_once_cell: A's initializer releases the GIL, B fills the
/// cell. Predicted: finished; both initializers ran, both threads got B's object, A's
/// object was released (its reference count seen).
harness::scenario_result minimal_cell_keeps_the_first_stored();

/// Thread A builds; a factory releases the GIL; thread B asks for the type. Predicted:
/// finished; both got one type object, built twice, the other one released.
harness::scenario_result two_threads_share_one_type();

/// RED's factory asks for the type. Predicted: finished, with a RuntimeError naming the
/// type (not a hang, not an abort); a later call, once the factory stops recursing, works.
harness::scenario_result reentrant_call_is_a_clear_error();

/// All three, with their predictions, in teaching order.
const std::vector<harness::scenario>& scenarios();

}  // namespace step03
