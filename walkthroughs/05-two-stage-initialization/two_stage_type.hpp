// Step 05: two-stage initialization. Stage 1 creates and readies the type, with no class
// attributes, in a gil_once_cell (not re-entrant). Stage 2 computes every class attribute
// outside any lock -- factories may release the GIL and may ask for the type, which is
// ready -- and then publishes all of them at once, under the GIL. Recursive class
// attributes (Color.RED = Color("red")) work.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_once_cell.hpp>
#include <gilonce/py_ref.hpp>

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace step05 {

/// A class attribute computed by user code in stage 2.
struct class_attribute {
    std::string name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python error set
    /// (or throws a C++ exception). May release the GIL and may ask for the type.
    std::function<PyObject*(gilonce::gil_token)> make;
};

/// Computed class attributes, by name, not yet published.
using attribute_values = std::vector<std::pair<std::string, gilonce::py_ref>>;

// --8<-- [start:class]
/// A Color type built on first use in two stages.
class two_stage_type {
public:
    /// `name`: the type's dotted name, a string literal (it becomes the type's tp_name).
    /// `make_base`, if given, runs in stage 1 and returns a new reference to the base type
    /// (or null with a Python error set); it may release the GIL, but must not ask for
    /// this type: stage 1 is not re-entrant.
    two_stage_type(const char* name, std::vector<class_attribute> attributes,
                   std::function<PyObject*(gilonce::gil_token)> make_base = {})
        : name_(name), attributes_(std::move(attributes)), make_base_(std::move(make_base)),
          stage1_(name) {}
    // --8<-- [end:class]

    // --8<-- [start:get]
    /// Requires: the GIL is held.
    /// Returns: a borrowed reference to the type with all its class attributes. Exception:
    /// a call made by a class-attribute factory on a thread that is computing them gets
    /// the ready type early, without its class attributes (so that it can create
    /// instances). Any other caller only ever gets the complete type.
    /// Errors (null, Python exception set): stage 1's error, or a `RuntimeError` naming
    /// the class attribute that failed, with the factory's error as `__cause__`; nothing is
    /// published then, and the next call computes the attributes again.
    /// Factories may run more than once (on racing threads); one set of values is kept.
    PyObject* get(gilonce::gil_token gil) {
        if (complete_ != nullptr) return complete_;  // the fast path: a load and a branch
        return get_slow(gil);
    }
    // --8<-- [end:get]

    // --8<-- [start:members]
    /// How many times class attributes were published (at most once). For tests.
    int publications() const noexcept { return publications_; }

private:
    PyObject* get_slow(gilonce::gil_token gil);
    std::optional<gilonce::py_ref> build_stage1(gilonce::gil_token gil);
    bool compute_attributes(gilonce::gil_token gil, attribute_values& values);
    bool publish(PyObject* type, attribute_values& values);

    const char* name_;
    std::vector<class_attribute> attributes_;
    std::function<PyObject*(gilonce::gil_token)> make_base_;
    gilonce::gil_once_cell<gilonce::py_ref> stage1_;  // the ready type, without attributes
    std::vector<std::thread::id> computing_threads_;  // threads in stage 2; GIL-guarded
    PyObject* complete_ = nullptr;                    // set once published; GIL-guarded
    int publications_ = 0;
};
// --8<-- [end:members]

}  // namespace step05
