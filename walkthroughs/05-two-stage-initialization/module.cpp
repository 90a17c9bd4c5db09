// step05: the Python module of walkthrough step 05: `Color()` (the two-stage Color, with
// RED and GREEN as Colors), `LazyType(name, attributes)` (a two-stage Color-like type whose
// class-attribute factories are Python callables, for tests with real Python threads), and
// the step's scenarios.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <set>

#include "harness/python_bindings.hpp"
#include "color_object.hpp"
#include "lazy_colors.hpp"
#include "scenarios.hpp"

namespace py = pybind11;

namespace {

step05::two_stage_type python_color("step05.Color", step05::color_attributes(&python_color));

py::object get_type(step05::two_stage_type& lazy) {
    PyObject* type = lazy.get(gilonce::gil_token::assume_held());
    if (type == nullptr) throw py::error_already_set();
    return py::reinterpret_borrow<py::object>(type);
}

class python_lazy_type {
public:
    // `attributes` maps each class attribute's name to a zero-argument callable; they are
    // computed in sorted name order.
    python_lazy_type(const std::string& name, const std::map<std::string, py::function>& attributes)
        : name_(lasting_copy(name)), lazy_(name_->c_str(), make_attributes(attributes)) {}

    py::object get() { return get_type(lazy_); }
    int publications() const { return lazy_.publications(); }

private:
    static std::vector<step05::class_attribute> make_attributes(const std::map<std::string, py::function>& attributes) {
        std::vector<step05::class_attribute> out;
        for (const auto& [name, factory] : attributes)
            out.push_back({name, [factory](gilonce::gil_token) { return PyObject_CallNoArgs(factory.ptr()); }});
        return out;
    }
    // A type keeps a pointer to its name (tp_name) and may outlive this object.
    static const std::string* lasting_copy(const std::string& name) {
        static auto* names = new std::set<std::string>;  // never destroyed, on purpose
        return &*names->insert(name).first;
    }
    const std::string* name_;
    step05::two_stage_type lazy_;
};

}  // namespace

PYBIND11_MODULE(step05, m) {
    m.doc() = "Walkthrough step 05: two-stage initialization";
    m.def("Color", [] { return get_type(python_color); },
          "step05.Color, whose RED and GREEN are Colors (built on the first call)");
    py::class_<python_lazy_type>(m, "LazyType",
        "A Color-like type built in two stages on first get(): instances are T(name).")
        .def(py::init<const std::string&, const std::map<std::string, py::function>&>(),
             py::arg("name"), py::arg("attributes"))
        .def("get", &python_lazy_type::get, "The type: complete, or (for a factory on the "
             "thread computing the attributes) ready but without its attributes")
        .def_property_readonly("publications", &python_lazy_type::publications);
    m.def("live_colors", &step05::live_colors, "How many Color instances (of any step05 Color type) exist");
    harness::bind_scenarios(m, step05::scenarios());
}
