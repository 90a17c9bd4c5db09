// Step 04: the recursive class-attribute problem. Step 03's lazy type, for a class whose
// class attributes are instances of the class (Color.RED = Color("red")). The type and
// its class attributes are built in one stage, inside one gil_once_cell initializer, so
// the factory of Color.RED asks for a type that does not exist yet: a clear error, naming
// the class and the attribute, is the best this design can do.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_once_cell.hpp>
#include <gilonce/py_ref.hpp>

#include <functional>
#include <string>
#include <vector>

namespace step04 {

/// A class attribute computed by user code while the type is built.
struct class_attribute {
    std::string name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python error set.
    /// May release the GIL and may ask for the type (to create an instance of it).
    std::function<PyObject*(gilonce::gil_token)> make;
};

// --8<-- [start:one_stage_lazy_type]
/// A Color type built on first use, with its class attributes, in one stage.
class one_stage_lazy_type {
public:
    /// `name`: the type's dotted name, a string literal (it becomes the type's tp_name).
    one_stage_lazy_type(const char* name, std::vector<class_attribute> attributes)
        : name_(name), attributes_(std::move(attributes)), type_(name) {}

    /// Requires: the GIL is held.
    /// Returns: a borrowed reference to the complete type, or null with a Python error:
    /// a `RuntimeError` "cannot compute class attribute <type>.<attribute>" whose
    /// `__cause__` is the factory's error. A factory that asks for the type (to create
    /// an instance of it) always fails this way: the type is still being built.
    PyObject* get(gilonce::gil_token gil) {
        const gilonce::py_ref* type = type_.get_or_try_init(gil, [&] { return build(gil); });
        return type ? type->get() : nullptr;
    }

private:
    std::optional<gilonce::py_ref> build(gilonce::gil_token gil);

    const char* name_;
    std::vector<class_attribute> attributes_;
    gilonce::gil_once_cell<gilonce::py_ref> type_;
};
// --8<-- [end:one_stage_lazy_type]

}  // namespace step04
