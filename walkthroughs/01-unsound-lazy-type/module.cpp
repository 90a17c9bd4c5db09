// step01: the Python module of walkthrough step 01. It exposes the step's scenarios
// (`scenarios()`, `play(name)`) and `Color()`, the unsound lazy type used the one way that
// works: a single caller whose factories neither release the GIL nor recurse.
#include <pybind11/pybind11.h>

#include "harness/python_bindings.hpp"
#include "scenarios.hpp"
#include "unsound_lazy_type.hpp"

namespace {
step01::unsound_lazy_type color_type(
    "step01.Color",
    {{"DEFAULT_NAME", [](gilonce::gil_token) { return PyUnicode_FromString("red"); }}});
}

PYBIND11_MODULE(step01, m) {
    m.doc() = "Walkthrough step 01: an unsound lazy type object";
    m.def("Color", [] {
        PyTypeObject* type = color_type.get(gilonce::gil_token::assume_held());
        if (type == nullptr) throw pybind11::error_already_set();
        return pybind11::reinterpret_borrow<pybind11::object>(reinterpret_cast<PyObject*>(type));
    }, "The lazily created type step01.Color (built on the first call)");
    harness::bind_scenarios(m, step01::scenarios());
}
