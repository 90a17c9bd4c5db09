// Step 07's scenarios: free-threaded CPython has no GIL to be the lock. gil_once_cell's
// protocol without it stores twice (SPIN's trail, read from a file and replayed); py_once_lock
// is exactly once and waits detached; lazy_type's two stages hold no lock across user code.
// All run on a GIL build, and each scenario's description names the path it exercises.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step07 {

/// Every scenario of this step with its prediction, in teaching order:
///   gil_cell_protocol_without_gil_stores_twice, py_once_lock_step02_race_builds_once,
///   py_once_lock_reentry_is_an_error, py_once_lock_failure_one_waiter_retries,
///   mutual_class_attributes_from_two_threads.
/// All are played on the GIL build: the GIL is released where the story needs it; the
/// mutual-types scenario runs lazy_type's GIL branch, not its free-threaded publication.
const std::vector<harness::scenario>& scenarios();

}  // namespace step07
