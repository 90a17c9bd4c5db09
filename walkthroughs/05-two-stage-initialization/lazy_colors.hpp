// Step 05: the two-stage Color types of this step, shared by its scenarios and module.
#pragma once

#include "two_stage_type.hpp"

namespace step05 {

/// The class attributes of step05.Color owned by `self`: DEFAULT_NAME, and RED and GREEN,
/// which are Colors (their factories ask `self` for the type). DEFAULT_NAME's factory
/// calls `default_name_hook` first (scenarios use it to release the GIL at a chosen moment).
std::vector<class_attribute> color_attributes(two_stage_type* self);
extern std::function<void()> default_name_hook;

/// step05.Color for the scenarios. (The Python module has its own: a scenario runs in a
/// forked child, and must find its type unbuilt whatever the parent process did.)
extern two_stage_type color;

/// step05.FlakyColor: RED's factory fails on its first call, the way `fail_with` says
/// ("python": a ValueError; "c++": a std::runtime_error), then works.
extern two_stage_type flaky_color;
extern std::string fail_with;

/// step05.BaseAskingColor: its base-type factory (stage 1) asks for the type itself.
extern two_stage_type base_asking_color;

}  // namespace step05
