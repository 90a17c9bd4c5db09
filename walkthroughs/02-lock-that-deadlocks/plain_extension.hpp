// Step 02's deadlock with nothing but real Python code driving a plain extension function
// (see plain_extension.cpp).
#pragma once

#include "harness/watchdog.hpp"

namespace step02 {

/// Runs, in this process (a watchdog child), two Python threads that call an extension
/// function whose function-local static is initialized by Python code that releases the
/// GIL. Deadlocks; returns only if it did not.
harness::scenario_result two_python_threads_and_a_plain_static();

}  // namespace step02
