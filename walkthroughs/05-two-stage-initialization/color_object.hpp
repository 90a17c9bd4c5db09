// Step 05: what a Color instance is, in C: an object holding a name. Its type is created
// from `color_spec(name)` by the lazy type; creating an instance needs that type ready.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace step05 {

struct color_object {
    PyObject_HEAD
    PyObject* name;  // a str, never null once constructed
};

/// The spec of a Color type named `type_name` (for example "step05.Color"), with
/// `Color(name)`, `.name`, repr, equality and hashing by name. `type_name` must outlive
/// every type made from the spec (Python 3.11 keeps the pointer as tp_name).
PyType_Spec color_spec(const char* type_name);

/// How many Color instances exist right now, of any Color type made from `color_spec`: the
/// tests use it to see that the values a losing thread computed were released.
long live_colors();

/// Creates `Color(name)` from `type`. Requires: the GIL is held. Returns a new reference,
/// or null with a Python error set.
PyObject* new_color(PyObject* type, const char* name);

}  // namespace step05
