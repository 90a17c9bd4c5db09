// Step 04: the lazy Color types of this step, shared by its scenarios and its module.
#pragma once

#include "one_stage_lazy_type.hpp"

namespace step04 {

/// step04.Color with DEFAULT_NAME (its factory releases the GIL, as an import would), and
/// RED and GREEN, which are Colors. Its build always fails on RED.
extern one_stage_lazy_type recursive_color;

/// step04.Color with DEFAULT_NAME only. Builds fine. Scenarios only: the Python module
/// has its own, because a scenario's forked child must find its type unbuilt.
extern one_stage_lazy_type plain_color;

/// Makes DEFAULT_NAME, released-GIL factory included, for a lazy type of one's own.
PyObject* make_default_name(gilonce::gil_token gil);

}  // namespace step04
