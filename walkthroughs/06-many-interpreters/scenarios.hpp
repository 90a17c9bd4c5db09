// Step 06's scenarios: C++ statics meet many interpreters -- a sub-interpreter that ends,
// Py_Finalize followed by Py_Initialize, own-GIL sub-interpreters (3.12+) -- and the forms
// that hold: module state (the colors example) and per_interpreter_cell.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step06 {

/// Every scenario of this step with its prediction, in teaching order:
///   static_type_outlives_its_sub_interpreter, static_type_survives_reinitialization,
///   own_gil_interpreters_share_one_static_cell,
///   single_phase_module_refused_by_own_gil_interpreter,
///   module_state_gives_each_interpreter_its_own_color,
///   module_state_rebuilds_after_reinitialization,
///   own_gil_interpreters_build_their_own_colors_at_once,
///   per_interpreter_cell_gives_each_interpreter_its_own_value,
///   own_gil_interpreters_fill_their_own_per_interpreter_cell.
/// The own-GIL ones name, in `unavailable`, why a 3.11 build cannot play them.
const std::vector<harness::scenario>& scenarios();

/// The control of own_gil_interpreters_share_one_static_cell, for the tests (the main job
/// does not play it): the same two threads and hook in the main interpreter, under its one
/// GIL. X's wait for Y, inside the initializer, ends at its bound (250 ms): Y cannot get in,
/// one run, Y is handed X's value. It plays on every version.
const harness::scenario& one_gil_control();

}  // namespace step06
