// Step 05: the two-stage Color types (see lazy_colors.hpp).
#include "lazy_colors.hpp"

#include <stdexcept>

#include "color_object.hpp"

namespace step05 {

std::function<void()> default_name_hook;
std::string fail_with = "python";

// --8<-- [start:color]
std::vector<class_attribute> color_attributes(two_stage_type* self) {
    return {
        {"DEFAULT_NAME", [](gilonce::gil_token) -> PyObject* {
             if (default_name_hook) default_name_hook();  // e.g. releases the GIL
             return PyUnicode_FromString("red");
         }},
        {"RED", [self](gilonce::gil_token gil) -> PyObject* {
             PyObject* type = self->get(gil);  // re-entrant: the ready type, early
             return type ? new_color(type, "red") : nullptr;
         }},
        {"GREEN", [self](gilonce::gil_token gil) -> PyObject* {
             PyObject* type = self->get(gil);
             return type ? new_color(type, "green") : nullptr;
         }},
    };
}

two_stage_type color("step05.Color", color_attributes(&color));
// --8<-- [end:color]

namespace {
int flaky_calls = 0;
}

two_stage_type flaky_color("step05.FlakyColor", {
    {"DEFAULT_NAME", [](gilonce::gil_token) { return PyUnicode_FromString("red"); }},
    {"RED", [](gilonce::gil_token gil) -> PyObject* {
         if (++flaky_calls == 1) {
             if (fail_with == "c++") throw std::runtime_error("no red paint today");
             PyErr_SetString(PyExc_ValueError, "no red paint today");
             return nullptr;
         }
         PyObject* type = flaky_color.get(gil);
         return type ? new_color(type, "red") : nullptr;
     }},
});

two_stage_type base_asking_color(
    "step05.BaseAskingColor", {},
    [](gilonce::gil_token gil) -> PyObject* {
        PyObject* itself = base_asking_color.get(gil);  // stage 1 asking for itself
        Py_XINCREF(itself);
        return itself;
    });

}  // namespace step05
