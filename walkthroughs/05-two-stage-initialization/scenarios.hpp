// Step 05's scenarios: recursive class attributes work, racing threads never see a type
// without its attributes, and every error path leaves the type retryable.
#pragma once

#include <vector>

#include "harness/scenario.hpp"

namespace step05 {

/// Every scenario of this step with its prediction, in teaching order:
///   recursive_attributes_work, racing_threads_never_see_missing_attributes,
///   python_error_in_factory_names_class_and_attribute,
///   cpp_exception_in_factory_names_class_and_attribute, stage1_reentry_is_an_error.
const std::vector<harness::scenario>& scenarios();

}  // namespace step05
