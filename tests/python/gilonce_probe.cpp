// gilonce_probe: a pybind11 module that puts gil_once_cell<py::object> in Python's hands.
//
// The pytest suite next to it uses real Python threads and threading.Event to race two
// initializers that release the GIL, the way extension users will meet the cell: through
// Python code that calls into an extension whose cached value needs Python to compute.
#include <gilonce/gilonce.hpp>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

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

// A gilonce::lazy_type made from Python: one class attribute per name, each computed by
// `hook(name, early_type)` in Python, so tests can switch greenlets, release the GIL, and
// look for the type by every other path while stage 2 runs.
class probe_lazy_type {
public:
    probe_lazy_type(const std::string& name, const std::vector<std::string>& attributes, py::function hook,
                    bool immutable, bool spec_immutable)
        : storage_(new spec_storage{name, attributes, {}, {}}) {
        // The spec's name must outlive every type made from it (3.11 keeps the pointer):
        // the storage is leaked on purpose, as a `static` spec would be.
        storage_->slots[0] = {Py_tp_doc, const_cast<char*>("a probe type, for tests")};
        storage_->slots[1] = {0, nullptr};
        unsigned int flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE;
        if (spec_immutable) flags |= Py_TPFLAGS_IMMUTABLETYPE;
        storage_->spec = {storage_->name.c_str(), static_cast<int>(sizeof(PyObject)), 0, flags, storage_->slots};
        std::vector<gilonce::class_attribute> made;
        for (const std::string& attribute : storage_->attributes) {
            const char* attribute_name = attribute.c_str();
            made.push_back({attribute_name, [this, hook, attribute_name](gilonce::gil_token gil) -> PyObject* {
                                PyTypeObject* early = type_->get(gil);
                                if (early == nullptr) return nullptr;
                                try {
                                    return hook(attribute_name, py::handle(reinterpret_cast<PyObject*>(early))).release().ptr();
                                } catch (py::error_already_set& e) {
                                    e.restore();
                                    return nullptr;
                                }
                            }});
        }
        type_ = std::make_unique<gilonce::lazy_type>(&storage_->spec, std::move(made), nullptr, immutable);
    }
    py::object get() {
        PyTypeObject* type = type_->get(gilonce::gil_token::assume_held());
        if (type == nullptr) throw py::error_already_set();
        return py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(type));
    }
    bool is_complete() const { return type_->is_complete(gilonce::gil_token::assume_held()); }

private:
    struct spec_storage {
        std::string name;
        std::vector<std::string> attributes;
        PyType_Slot slots[2];
        PyType_Spec spec;
    };
    spec_storage* storage_;  // leaked: see the constructor
    std::unique_ptr<gilonce::lazy_type> type_;
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
    py::class_<probe_lazy_type>(m, "LazyType")
        .def(py::init<const std::string&, const std::vector<std::string>&, py::function, bool, bool>(),
             py::arg("name"), py::arg("attributes"), py::arg("hook"), py::arg("immutable") = true,
             py::arg("spec_immutable") = false)
        .def("get", &probe_lazy_type::get, "The type (complete, or early inside a hook of this context)")
        .def("is_complete", &probe_lazy_type::is_complete);
    // Translate the re-entrancy error to RuntimeError explicitly: its message names the cell.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const gilonce::reentrant_init_error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });
}
