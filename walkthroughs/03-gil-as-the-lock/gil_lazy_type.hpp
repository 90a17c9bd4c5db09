// Step 03: let the GIL be the lock. The lazy type keeps its type object in a
// gilonce::gil_once_cell: no second lock, so nothing can deadlock against the GIL. The
// price is stated, shown and tested: when a build releases the GIL, another thread may
// build a second type object; the first one stored wins and the other is released.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_once_cell.hpp>
#include <gilonce/py_ref.hpp>

#include <functional>
#include <string>
#include <vector>

namespace step03 {

/// A class attribute computed by user code while the type is built.
struct class_attribute {
    std::string name;
    /// Requires: the GIL is held. Returns a new reference, or null with a Python error set.
    /// May release the GIL (an import, any Python code) and may ask for the type itself.
    std::function<PyObject*(gilonce::gil_token)> make;
};

// --8<-- [start:gil_lazy_type]
/// A heap type built on first use, with the GIL as its only lock.
class gil_lazy_type {
public:
    /// `name`: the type's dotted name ("step03.Color"). Python 3.11 keeps the pointer as the
    /// type's `tp_name`, so the characters must outlive every type object built (a string
    /// literal does).
    gil_lazy_type(const char* name, std::vector<class_attribute> attributes)
        : name_(name), attributes_(std::move(attributes)), type_(name) {}

    /// Requires: the GIL is held.
    /// Returns: a borrowed reference to the type, complete with its class attributes; every
    /// caller, on every thread, gets the same object. Never blocks.
    /// If a class-attribute factory releases the GIL, another thread may build the type
    /// too: the first build to finish is kept, the other type object is released.
    /// Errors (null with a Python exception set): a factory's exception; a `RuntimeError`
    /// naming the type if a factory asks for the type while this execution context (this
    /// thread, or this greenlet) is building it. The cell stays empty after an error: the
    /// next call builds again.
    PyTypeObject* get(gilonce::gil_token gil) {
        const gilonce::py_ref* type = type_.get_or_try_init(gil, [&] { return build(gil); });
        return type ? reinterpret_cast<PyTypeObject*>(type->get()) : nullptr;
    }

    const char* name() const noexcept { return name_; }

private:
    /// Creates the heap type and sets every class attribute. Runs user code.
    std::optional<gilonce::py_ref> build(gilonce::gil_token gil);

    const char* name_;
    std::vector<class_attribute> attributes_;
    gilonce::gil_once_cell<gilonce::py_ref> type_;  // named after the type, for errors
};
// --8<-- [end:gil_lazy_type]

}  // namespace step03
