// Step 04: the lazy Color types (see recursive_color.hpp).
#include "recursive_color.hpp"

#include "color_object.hpp"
#include "harness/gil.hpp"

namespace step04 {
PyObject* make_default_name(gilonce::gil_token) {
    harness::without_gil([] {});  // stands for an import: the GIL is released and re-taken
    return PyUnicode_FromString("red");
}

// --8<-- [start:recursive_color]
one_stage_lazy_type recursive_color("step04.Color", {
    {"DEFAULT_NAME", make_default_name},
    {"RED", [](gilonce::gil_token gil) -> PyObject* {
         PyObject* color_type = recursive_color.get(gil);  // the type being built...
         if (color_type == nullptr) return nullptr;        // ...is not there yet
         return new_color(color_type, "red");
     }},
    {"GREEN", [](gilonce::gil_token gil) -> PyObject* {
         PyObject* color_type = recursive_color.get(gil);
         if (color_type == nullptr) return nullptr;
         return new_color(color_type, "green");
     }},
});
// --8<-- [end:recursive_color]

one_stage_lazy_type plain_color("step04.Color", {{"DEFAULT_NAME", make_default_name}});

}  // namespace step04
