// Step 01: building the type object of unsound_lazy_type (see unsound_lazy_type.hpp).
#include "unsound_lazy_type.hpp"

#include <string>

namespace step01 {

unsound_lazy_type::unsound_lazy_type(const char* name, std::vector<class_attribute> attributes)
    : name_(name), attributes_(std::move(attributes)) {}

// --8<-- [start:initialize_type_object]
// Fills the static type object's slots, computes the class attributes (user code), then
// readies the type. Every caller that arrives before PyType_Ready returns sees it unready.
bool unsound_lazy_type::initialize_type_object(gilonce::gil_token gil) {
    Py_SET_REFCNT(reinterpret_cast<PyObject*>(&type_object_), 1);  // a static type is immortal-ish
    type_object_.tp_name = name_;
    type_object_.tp_basicsize = sizeof(PyObject);
    type_object_.tp_flags = Py_TPFLAGS_DEFAULT;
    type_object_.tp_new = PyType_GenericNew;

    PyObject* dict = PyDict_New();
    if (dict == nullptr) return false;
    for (const class_attribute& attribute : attributes_) {
        PyObject* value = attribute.make(gil);  // user code: may release the GIL, may recurse
        if (value == nullptr || PyDict_SetItemString(dict, attribute.name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(dict);
            return false;
        }
        Py_DECREF(value);
    }
    type_object_.tp_dict = dict;  // PyType_Ready keeps a dict that is already there
    const bool ready = PyType_Ready(&type_object_) == 0;
    harness::note(ready ? "PyType_Ready done: only now is the type ready" : "PyType_Ready failed");
    return ready;
}
// --8<-- [end:initialize_type_object]

std::string describe_readiness(PyTypeObject* type) {
    if (type == nullptr) return "no type (null)";
    std::string out = PyType_HasFeature(type, Py_TPFLAGS_READY) ? "ready" : "Py_TPFLAGS_READY unset";
    if (type->tp_dict == nullptr) return out + ", no tp_dict";
    return out + ", " + std::to_string(PyDict_Size(type->tp_dict)) + " entries in tp_dict";
}

}  // namespace step01
