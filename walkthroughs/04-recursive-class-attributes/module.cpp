// step04: the Python module of walkthrough step 04: `Color()` (the recursive Color: it
// raises), `PlainColor()` (no recursive attributes: it works) and the step's scenarios.
#include <pybind11/pybind11.h>

#include "harness/python_bindings.hpp"
#include "recursive_color.hpp"
#include "scenarios.hpp"

namespace py = pybind11;

namespace {
step04::one_stage_lazy_type python_plain_color("step04.Color", {{"DEFAULT_NAME", step04::make_default_name}});

py::object get_type(step04::one_stage_lazy_type& lazy) {
    PyObject* type = lazy.get(gilonce::gil_token::assume_held());
    if (type == nullptr) throw py::error_already_set();
    return py::reinterpret_borrow<py::object>(type);
}
}  // namespace

PYBIND11_MODULE(step04, m) {
    m.doc() = "Walkthrough step 04: the recursive class-attribute problem";
    m.def("Color", [] { return get_type(step04::recursive_color); },
          "step04.Color with RED and GREEN as Colors: raises RuntimeError naming step04.Color.RED");
    m.def("PlainColor", [] { return get_type(python_plain_color); },
          "step04.Color without attributes that are Colors: builds fine");
    harness::bind_scenarios(m, step04::scenarios());
}
