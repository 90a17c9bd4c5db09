// scenarios/lazy_object_race.hpp: the two-thread race on a lazily cached Python object,
// played against a function-local `static` (deadlocks) and against gil_once_cell (finishes).
//
//   step | thread A                                 | thread B
//   -----+------------------------------------------+-------------------------------------
//   1    | holds GIL; starts the lazy initializer   |
//   2    | initializer releases the GIL             | takes the GIL
//   3    | waits for the GIL                        | asks for the value:
//        |                                          |  static: waits for the guard A holds
//        |                                          |          -> deadlock
//        |                                          |  gil_once_cell: runs its own
//        |                                          |          initializer, stores, returns
//   4    | (gil_once_cell) takes the GIL; the cell  |
//        | is full: drops its value, returns B's    |
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace scenarios {

/// The trace's name for the function-local static's once-lock (its guard variable).
inline constexpr const char* static_guard = "static guard of naive_cached_object";

/// BAD: the value is cached in a function-local `static`. Deadlocks; run it in a child.
harness::scenario_result race_on_function_local_static();

/// The value is cached in a gilonce::gil_once_cell. Passes when both threads got the same
/// object; the detail says how many times it was built (2: the price of never blocking).
harness::scenario_result race_on_gil_once_cell();

/// Both races, with their predictions, in teaching order.
const std::vector<harness::scenario>& all();

}  // namespace scenarios
