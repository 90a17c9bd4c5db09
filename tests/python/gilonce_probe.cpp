// gilonce_probe: a pybind11 module that puts gil_once_cell<py::object> in Python's hands.
//
// The pytest suite next to it uses real Python threads and threading.Event to race two
// initializers that release the GIL, the way extension users will meet the cell: through
// Python code that calls into an extension whose cached value needs Python to compute.
#include <gilonce/gilonce.hpp>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

namespace py = pybind11;

namespace {

// One gil_once_cell<py::object> per Python object, named by the caller.
class probe_cell {
public:
    explicit probe_cell(std::string name) : name_(std::move(name)), cell_(name_.c_str()) {}

    py::object get() const {
        const py::object* v = cell_.get(gil());
        return v ? *v : py::none();
    }
    bool set(py::object value) { return cell_.set(gil(), std::move(value)); }
    // `init` is any Python callable: it may release the GIL, raise, or call back into us.
    py::object get_or_init(const py::function& init) {
        return cell_.get_or_init(gil(), [&] { return py::object(init()); });
    }
    py::object take() {
        std::optional<py::object> v = cell_.take(gil(), gilonce::invalidates_references);
        return v ? std::move(*v) : py::none();
    }
    const std::string& name() const { return name_; }

private:
    static gilonce::gil_token gil() { return gilonce::gil_token::assume_held(); }
    std::string name_;  // outlives cell_, which keeps a pointer to its characters
    gilonce::gil_once_cell<py::object> cell_;
};

}  // namespace

PYBIND11_MODULE(gilonce_probe, m) {
    m.doc() = "gil_once_cell<py::object> exposed to Python, for tests";
    py::class_<probe_cell>(m, "Cell")
        .def(py::init<std::string>(), py::arg("name"))
        .def_property_readonly("name", &probe_cell::name)
        .def("get", &probe_cell::get, "The stored object, or None")
        .def("set", &probe_cell::set, py::arg("value"), "Store if empty; True if stored")
        .def("get_or_init", &probe_cell::get_or_init, py::arg("init"),
             "The stored object, calling init() first if the cell is empty")
        .def("take", &probe_cell::take, "Empty the cell; return the object or None");
    // Translate the re-entrancy error to RuntimeError explicitly: its message names the cell.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const gilonce::reentrant_init_error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });
}
