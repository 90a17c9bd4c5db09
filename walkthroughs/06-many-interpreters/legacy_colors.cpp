// step06_legacy: the naive module this step starts from -- single-phase initialization
// (PyModule_Create in PyInit_*, no module state) with its lazy type in a C++ static.
// CPython runs PyInit_step06_legacy once per process and copies the module for every
// other interpreter, so every interpreter shares one Color; and since 3.12 an isolated
// interpreter (own GIL, own allocator: check_multi_interp_extensions) refuses to import it.
// Compare reference/examples/colors.cpp.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/lazy_type.hpp>

namespace {

// --8<-- [start:legacy_module]
PyType_Slot legacy_color_slots[] = {{0, nullptr}};
PyType_Spec legacy_color_spec = {"step06_legacy.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT,
                                 legacy_color_slots};

// BAD: one Color for the process, shared by every interpreter that imports the module.
gilonce::lazy_type legacy_color(&legacy_color_spec, {{"RED", [](gilonce::gil_token gil) -> PyObject* {
    PyTypeObject* type = legacy_color.get(gil);
    return type != nullptr ? PyObject_CallNoArgs(reinterpret_cast<PyObject*>(type)) : nullptr;
}}});

// step06_legacy.Color(): the lazily built type.
PyObject* legacy_get_color(PyObject*, PyObject*) {
    PyTypeObject* type = legacy_color.get(gilonce::gil_token::assume_held());
    Py_XINCREF(type);
    return reinterpret_cast<PyObject*>(type);
}

PyMethodDef legacy_methods[] = {
    {"Color", legacy_get_color, METH_NOARGS, "The module's Color type, built on the first call."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef legacy_module = {PyModuleDef_HEAD_INIT, "step06_legacy",
                             "Walkthrough step 06: a single-phase module with a static lazy type.",
                             -1, legacy_methods, nullptr, nullptr, nullptr, nullptr};
}  // namespace

// Single-phase initialization: a module object made once, here, for the whole process.
PyMODINIT_FUNC PyInit_step06_legacy() { return PyModule_Create(&legacy_module); }
// --8<-- [end:legacy_module]
