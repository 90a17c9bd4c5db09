// Step 04: building the type and its class attributes in one stage (see the header).
#include "one_stage_lazy_type.hpp"

#include <gilonce/errors.hpp>

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
            const std::string what =
                std::string("cannot compute class attribute ") + name_ + "." + attribute.name;
            gilonce::raise_from_current(PyExc_RuntimeError, what.c_str());  // the cause is kept
            return std::nullopt;
        }
    }
    return type;
}
// --8<-- [end:build]

}  // namespace step04
