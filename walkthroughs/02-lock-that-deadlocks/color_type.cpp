// Step 02: building step02.Color (see color_type.hpp).
#include "color_type.hpp"

#include <stdexcept>
#include <string>

#include "harness/trace.hpp"

namespace step02 {

std::vector<class_attribute> color_attributes;

namespace {
PyType_Slot color_slots[] = {{Py_tp_doc, const_cast<char*>("A color (walkthrough step 02).")}, {0, nullptr}};
PyType_Spec color_spec = {"step02.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, color_slots};

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
PyObject* build_color_type(gilonce::gil_token gil) {
    harness::note("builds step02.Color");
    PyObject* type = PyType_FromSpec(&color_spec);
    if (type == nullptr) throw_python_error("creating step02.Color");
    for (const class_attribute& attribute : color_attributes) {
        PyObject* value = attribute.make(gil);  // user code: may release the GIL, may recurse
        if (value == nullptr || PyObject_SetAttrString(type, attribute.name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(type);
            throw_python_error("computing a class attribute of step02.Color");
        }
        Py_DECREF(value);
    }
    return type;
}
// --8<-- [end:build]

}  // namespace step02
