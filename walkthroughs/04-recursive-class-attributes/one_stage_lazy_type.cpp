// Step 04: building the type and its class attributes in one stage (see the header).
#include "one_stage_lazy_type.hpp"

#include "color_object.hpp"
#include "harness/trace.hpp"

namespace step04 {

// --8<-- [start:build]
std::optional<gilonce::py_ref> one_stage_lazy_type::build(gilonce::gil_token gil) {
    harness::note(std::string("builds ") + name_ + " and its class attributes");
    PyType_Spec spec = color_spec(name_);
    auto type = gilonce::py_ref::steal(PyType_FromSpec(&spec));
    if (!type) return std::nullopt;
    // The type object exists from here on, but only this initializer can see it: the cell
    // stores it when build() returns. A factory that needs it gets the cell's
    // re-entrancy error instead.
    for (const class_attribute& attribute : attributes_) {
        auto value = gilonce::py_ref::steal(attribute.make(gil));
        if (!value || PyObject_SetAttrString(type.get(), attribute.name.c_str(), value.get()) < 0) {
            raise_runtime_error_from_current(std::string("cannot compute class attribute ") +
                                             name_ + "." + attribute.name);
            return std::nullopt;
        }
    }
    return type;
}
// --8<-- [end:build]

void raise_runtime_error_from_current(const std::string& message) {
    PyObject *cause_type, *cause, *cause_traceback;
    PyErr_Fetch(&cause_type, &cause, &cause_traceback);
    PyErr_NormalizeException(&cause_type, &cause, &cause_traceback);
    if (cause != nullptr && cause_traceback != nullptr) PyException_SetTraceback(cause, cause_traceback);
    PyErr_SetString(PyExc_RuntimeError, message.c_str());
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (cause != nullptr) {
        Py_INCREF(cause);
        PyException_SetContext(value, cause);  // steals a reference
        PyException_SetCause(value, cause);    // steals a reference; sets __suppress_context__
    }
    Py_XDECREF(cause_type);
    Py_XDECREF(cause_traceback);
    PyErr_Restore(type, value, traceback);
}

}  // namespace step04
