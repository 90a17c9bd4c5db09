// step03: the Python module of walkthrough step 03. It exposes the step's scenarios
// (`scenarios()`, `play(name)`) and `LazyType(name, attributes)`: a gil_lazy_type whose
// class-attribute factories are Python callables, so Python tests can race real threads
// against it, recurse through it and make its factories raise.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <set>
#include <memory>

#include "gil_lazy_type.hpp"
#include "harness/python_bindings.hpp"
#include "scenarios.hpp"

namespace py = pybind11;

namespace {

class python_lazy_type {
public:
    // `attributes` maps each class attribute's name to a zero-argument callable.
    python_lazy_type(const std::string& name, const std::map<std::string, py::function>& attributes)
        : name_(lasting_copy(name)), lazy_(name_->c_str(), make_attributes(attributes)) {}

    py::object get() {
        PyTypeObject* type = lazy_.get(gilonce::gil_token::assume_held());
        if (type == nullptr) throw py::error_already_set();
        return py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(type));
    }
    const std::string& name() const { return *name_; }

private:
    static std::vector<step03::class_attribute> make_attributes(const std::map<std::string, py::function>& attributes) {
        std::vector<step03::class_attribute> out;
        for (const auto& [name, factory] : attributes) {
            out.push_back({name, [factory](gilonce::gil_token) -> PyObject* {
                               return PyObject_CallNoArgs(factory.ptr());  // null + error on failure
                           }});
        }
        return out;
    }
    // A type object keeps a pointer to its name (tp_name) and may outlive this LazyType:
    // names are kept for the life of the process (one small string per distinct name).
    static const std::string* lasting_copy(const std::string& name) {
        static auto* names = new std::set<std::string>;  // never destroyed, on purpose
        return &*names->insert(name).first;
    }
    const std::string* name_;
    step03::gil_lazy_type lazy_;
};

}  // namespace

PYBIND11_MODULE(step03, m) {
    m.doc() = "Walkthrough step 03: let the GIL be the lock";
    py::class_<python_lazy_type>(m, "LazyType",
        "A type built on first get() with the GIL as its only lock.")
        .def(py::init<std::string, const std::map<std::string, py::function>&>(),
             py::arg("name"), py::arg("attributes"))
        .def_property_readonly("name", &python_lazy_type::name)
        .def("get", &python_lazy_type::get, "The type, built on the first call");
    harness::bind_scenarios(m, step03::scenarios());
}
