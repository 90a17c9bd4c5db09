// Step 02's scenarios: each locked lazy type, raced by two threads while the build
// releases the GIL, and asked for the type recursively by a class-attribute factory.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step02 {

/// Every scenario of this step with its prediction, in teaching order:
///   single_caller_works_with_{static,call_once,release_then_lock},
///   static_two_threads_deadlock, call_once_two_threads_deadlock,
///   static_recursion_aborts_single_threaded, static_recursion_hangs_once_threads_exist,
///   call_once_recursion_hangs, python_threads_deadlock_on_a_plain_static,
///   release_then_lock_two_threads_finish, release_then_lock_recursion_hangs.
const std::vector<harness::scenario>& scenarios();

}  // namespace step02
