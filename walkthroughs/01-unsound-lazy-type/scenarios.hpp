// Step 01's scenarios: how unsound_lazy_type hands out a type that is not ready.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step01 {

/// One caller, no factory that releases the GIL or recurses: the type comes out ready.
/// The common case works, which is why the bug hides. Predicted: finished.
harness::scenario_result single_caller_gets_ready_type();

/// The factory of class attribute RED asks for the type (as an attribute whose value is an
/// instance of the class must). Predicted: wrong result, the re-entrant call got an
/// unready type.
harness::scenario_result reentrant_call_sees_unready_type();

/// Thread A builds the type; a factory releases the GIL; thread B asks for the type.
/// Predicted: wrong result, B got an unready type.
harness::scenario_result second_thread_sees_unready_type();

/// As the re-entrant story, but RED's factory uses the type it got (reads an attribute).
/// Predicted: crashed (SIGSEGV: before PyType_Ready the type's ob_type is null).
harness::scenario_result using_the_unready_type_crashes();

/// A factory fails: `get` returns null, but the flag stays set, so the retry gets the type
/// that will never be ready. Predicted: wrong result.
harness::scenario_result failed_build_leaves_the_flag_set();

/// The five above, with their predictions, in teaching order.
const std::vector<harness::scenario>& scenarios();

}  // namespace step01
