// Step 03: building the heap type of gil_lazy_type (see gil_lazy_type.hpp).
#include "gil_lazy_type.hpp"

#include "harness/trace.hpp"

namespace step03 {

// --8<-- [start:build]
// Each call builds a *new* type object: two threads racing must never share half-built
// storage (step 01's static PyTypeObject could not be built twice). The type is private to
// this call until gil_once_cell stores it.
std::optional<gilonce::py_ref> gil_lazy_type::build(gilonce::gil_token gil) {
    harness::note(std::string("builds ") + name_);
    PyType_Slot slots[] = {{Py_tp_doc, const_cast<char*>("A lazily built type (walkthrough step 03).")},
                           {0, nullptr}};
    PyType_Spec spec = {name_, sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, slots};
    auto type = gilonce::py_ref::steal(PyType_FromSpec(&spec));
    if (!type) return std::nullopt;
    for (const class_attribute& attribute : attributes_) {
        auto value = gilonce::py_ref::steal(attribute.make(gil));  // may release the GIL, may recurse
        if (!value || PyObject_SetAttrString(type.get(), attribute.name.c_str(), value.get()) < 0)
            return std::nullopt;  // `type` is released; the cell stays empty
    }
    harness::note(std::string("finished building ") + name_);
    return type;
}
// --8<-- [end:build]

}  // namespace step03
