// Step 02: building step02.Color (see color_type.hpp).
#include "color_type.hpp"

#include <stdexcept>
#include <string>

#include "harness/trace.hpp"

namespace step02 {

std::vector<class_attribute> color_attributes;

namespace {
// Step 01's static type object, unchanged: this step changes one thing, the lock around
// the build. (Step 03, where two builds may run at once, needs a new object per build.)
PyTypeObject color_type_object{};  // static storage: its address exists before its contents

[[noreturn]] void throw_python_error(const char* what) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    std::string message = std::string(what) + ": ";
    PyObject* text = value ? PyObject_Str(value) : nullptr;
    message += text ? PyUnicode_AsUTF8(text) : "unknown Python error";
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    PyErr_Clear();
    throw std::runtime_error(message);
}
}  // namespace

// --8<-- [start:build]
// Step 01's build of the static type object, moved into a function that each variant
// calls under its lock: class attributes into the dict first, then PyType_Ready.
PyObject* build_color_type(gilonce::gil_token gil) {
    harness::note("builds step02.Color");
    Py_SET_REFCNT(reinterpret_cast<PyObject*>(&color_type_object), 1);  // a static type is immortal-ish
    color_type_object.tp_name = "step02.Color";
    color_type_object.tp_basicsize = sizeof(PyObject);
    color_type_object.tp_flags = Py_TPFLAGS_DEFAULT;
    color_type_object.tp_new = PyType_GenericNew;

    PyObject* dict = PyDict_New();
    if (dict == nullptr) throw_python_error("creating step02.Color's dict");
    for (const class_attribute& attribute : color_attributes) {
        PyObject* value = attribute.make(gil);  // user code: may release the GIL, may recurse
        if (value == nullptr || PyDict_SetItemString(dict, attribute.name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(dict);
            throw_python_error("computing a class attribute of step02.Color");
        }
        Py_DECREF(value);
    }
    color_type_object.tp_dict = dict;  // PyType_Ready keeps a dict that is already there
    if (PyType_Ready(&color_type_object) < 0) throw_python_error("readying step02.Color");
    return Py_NewRef(reinterpret_cast<PyObject*>(&color_type_object));
}
// --8<-- [end:build]

}  // namespace step02
