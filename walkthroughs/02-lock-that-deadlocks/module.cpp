// step02: the Python module of walkthrough step 02. It exposes the step's scenarios
// (`scenarios()`, `play(name)`), each of which runs in a watchdog child: calling the
// deadlocking variants in this process would hang it.
#include <pybind11/pybind11.h>

#include <string>

#include "color_type.hpp"
#include "harness/python_bindings.hpp"
#include "locked_lazy_types.hpp"
#include "scenarios.hpp"

namespace py = pybind11;

PYBIND11_MODULE(step02, m) {
    m.doc() = "Walkthrough step 02: fix it with a lock? (it deadlocks)";
    // In this process the types are only ever asked for by one caller at a time, with a
    // factory that neither releases the GIL nor recurses: the one way these variants work.
    step02::color_attributes = {{"DEFAULT_NAME", [](gilonce::gil_token) { return PyUnicode_FromString("red"); }}};
    m.def("Color", [](const std::string& variant) {
        const auto gil = gilonce::gil_token::assume_held();
        PyObject* type = nullptr;
        try {
            if (variant == "static") type = step02::get_type_with_static(gil);
            else if (variant == "call_once") type = step02::get_type_with_call_once(gil);
            else if (variant == "release_then_lock") type = step02::get_type_release_then_lock(gil);
            else throw py::value_error("unknown variant '" + variant +
                                       "' (expected 'static', 'call_once' or 'release_then_lock')");
        } catch (const std::runtime_error& e) {
            throw py::value_error(e.what());
        }
        return py::reinterpret_borrow<py::object>(type);
    }, py::arg("variant"), "step02.Color built lazily behind the named lock (single caller only)");
    harness::bind_scenarios(m, step02::scenarios());
}
