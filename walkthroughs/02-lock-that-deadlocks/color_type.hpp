// Step 02: building the type, done right once. Every lazy variant in this step calls
// build_color_type; what differs is only the lock that makes other callers wait for it.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>

#include <functional>
#include <vector>

namespace step02 {

/// A class attribute computed by user code while the type is built.
struct class_attribute {
    const char* name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python error set.
    /// May release the GIL (an import, any Python code) and may ask for the type itself.
    std::function<PyObject*(gilonce::gil_token)> make;
};

/// The class attributes every lazy variant of this step builds the type with. Scenarios set
/// them before the first call (nothing else changes them).
extern std::vector<class_attribute> color_attributes;

/// Builds step 01's static type object `step02.Color`, class attributes first, then
/// PyType_Ready. Must run at most once per process (the variants' locks see to that).
/// Requires: the GIL is held. Returns: a new reference, never null.
/// Throws: std::runtime_error with the Python error's text (which is cleared) on failure.
PyObject* build_color_type(gilonce::gil_token gil);

}  // namespace step02
