// Step 01: an unsound lazy type object.
//
// A type object created on first use, guarded by an "initialized" flag that is set BEFORE
// the type is built. The build runs user code (class-attribute factories), which may
// release the GIL or ask for the type again; either way a caller is handed a type that
// is not ready. This is the shape of the code PyO3 replaced in its pull request 975.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>

#include "harness/trace.hpp"  // narration for the walkthrough runner; changes nothing

#include <functional>
#include <string>
#include <vector>

namespace step01 {

// --8<-- [start:class_attribute]
/// A class attribute computed by user code while the type is built.
struct class_attribute {
    const char* name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python error set.
    /// May release the GIL (an import, any Python code) and may ask for the type itself.
    std::function<PyObject*(gilonce::gil_token)> make;
};
// --8<-- [end:class_attribute]

/// BAD: do not copy. A lazily initialized static type whose `get` can return the type
/// before it is ready.
///
/// Safety: `get` is only sound if no class-attribute factory releases the GIL or calls
/// `get`. Nothing enforces that, and ordinary Python code breaks it.
class unsound_lazy_type {
public:
    /// `name` is the type's dotted name (a string literal); `attributes` its class attributes.
    unsound_lazy_type(const char* name, std::vector<class_attribute> attributes);

    // --8<-- [start:get]
    /// Requires: the GIL is held.
    /// Returns: the type object, built on the first call. BUG: a re-entrant call, or a call
    /// from another thread while the first build has released the GIL, returns the type
    /// before it is ready (`Py_TPFLAGS_READY` unset, no class attributes). On a failed
    /// build: null with a Python error set, and the flag stays set (later calls return a
    /// type that will never be ready).
    PyTypeObject* get(gilonce::gil_token gil) {
        if (!initialized_) {
            initialized_ = true;  // BUG: claims "done" before the work is done
            harness::note("sets initialized = true, then starts building the type");
            if (!initialize_type_object(gil)) return nullptr;
        }
        return &type_object_;  // possibly still being built by someone else
    }
    // --8<-- [end:get]

private:
    bool initialize_type_object(gilonce::gil_token gil);

    const char* name_;
    std::vector<class_attribute> attributes_;
    bool initialized_ = false;
    PyTypeObject type_object_{};  // static storage: its address exists before its contents
};

/// Describes how ready `type` is, for scenario details: "ready, 2 class attributes" or
/// "Py_TPFLAGS_READY unset, no tp_dict". Requires: the GIL is held. Does not use the type.
std::string describe_readiness(PyTypeObject* type);

}  // namespace step01
