// gilonce_capi_probe: gil_once_cell and lazy_type exposed through the plain C API, for the
// greenlet tests. pybind11 cannot serve there: its own per-call bookkeeping
// (loader_life_support) is thread-local and aborts the process when greenlets that switched
// inside pybind11 calls finish out of order. Cells and types are numbered and live as long
// as the process (a test makes fresh ones).
#include <gilonce/gilonce.hpp>

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace {

using gilonce::gil_token;
using gilonce::py_ref;

struct named_cell {
    std::string name;
    gilonce::gil_once_cell<py_ref> cell;
    explicit named_cell(std::string n) : name(std::move(n)), cell(name.c_str()) {}
};
// Never shrinks (element addresses stay valid) and never destroyed: its Python objects
// must not be released at process exit, after Py_Finalize.
std::deque<named_cell>& cells = *new std::deque<named_cell>;

// One class attribute per name, computed by hook(name, early_type).
struct probe_type {
    std::string name;
    std::vector<std::string> attributes;
    PyType_Slot slots[1] = {{0, nullptr}};
    PyType_Spec spec{};
    py_ref hook;
    std::unique_ptr<gilonce::lazy_type> type;
};
std::deque<probe_type>& types = *new std::deque<probe_type>;  // likewise

gil_token gil() { return gil_token::assume_held(); }

PyObject* new_cell(PyObject*, PyObject* args) {
    const char* name;
    if (!PyArg_ParseTuple(args, "s", &name)) return nullptr;
    cells.emplace_back(name);
    return PyLong_FromSize_t(cells.size() - 1);
}

named_cell* cell_at(Py_ssize_t index) {
    if (index < 0 || static_cast<std::size_t>(index) >= cells.size()) {
        PyErr_SetString(PyExc_IndexError, "no such cell");
        return nullptr;
    }
    return &cells[static_cast<std::size_t>(index)];
}

PyObject* cell_get_or_init(PyObject*, PyObject* args) {
    Py_ssize_t index;
    PyObject* init;
    if (!PyArg_ParseTuple(args, "nO", &index, &init)) return nullptr;
    named_cell* c = cell_at(index);
    if (c == nullptr) return nullptr;
    const py_ref* value = c->cell.get_or_try_init(gil(), [&]() -> std::optional<py_ref> {
        py_ref made = py_ref::steal(PyObject_CallNoArgs(init));  // may switch greenlets
        if (!made) return std::nullopt;
        return made;
    });
    return value ? Py_NewRef(value->get()) : nullptr;
}

PyObject* cell_get(PyObject*, PyObject* args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n", &index)) return nullptr;
    named_cell* c = cell_at(index);
    if (c == nullptr) return nullptr;
    const py_ref* value = c->cell.get(gil());
    return Py_NewRef(value ? value->get() : Py_None);
}

PyObject* new_lazy_type(PyObject*, PyObject* args) {
    const char* name;
    PyObject *names, *hook;
    if (!PyArg_ParseTuple(args, "sO!O", &name, &PyList_Type, &names, &hook)) return nullptr;
    probe_type& t = types.emplace_back();
    t.name = name;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); ++i) {
        const char* attribute = PyUnicode_AsUTF8(PyList_GET_ITEM(names, i));
        if (attribute == nullptr) return nullptr;
        t.attributes.emplace_back(attribute);
    }
    t.spec = {t.name.c_str(), static_cast<int>(sizeof(PyObject)), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, t.slots};
    t.hook = py_ref::borrow(hook);
    std::vector<gilonce::class_attribute> made;
    for (const std::string& attribute : t.attributes) {
        probe_type* owner = &t;
        const char* attribute_name = attribute.c_str();
        made.push_back({attribute_name, [owner, attribute_name](gil_token token) -> PyObject* {
                            PyTypeObject* early = owner->type->get(token);
                            if (early == nullptr) return nullptr;
                            return PyObject_CallFunction(owner->hook.get(), "sO", attribute_name, early);
                        }});
    }
    t.type = std::make_unique<gilonce::lazy_type>(&t.spec, std::move(made));
    return PyLong_FromSize_t(types.size() - 1);
}

probe_type* type_at(PyObject* args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n", &index)) return nullptr;
    if (index < 0 || static_cast<std::size_t>(index) >= types.size()) {
        PyErr_SetString(PyExc_IndexError, "no such lazy type");
        return nullptr;
    }
    return &types[static_cast<std::size_t>(index)];
}

PyObject* lazy_type_get(PyObject*, PyObject* args) {
    probe_type* t = type_at(args);
    if (t == nullptr) return nullptr;
    PyTypeObject* type = t->type->get(gil());
    return type ? Py_NewRef(reinterpret_cast<PyObject*>(type)) : nullptr;
}

PyObject* lazy_type_is_complete(PyObject*, PyObject* args) {
    probe_type* t = type_at(args);
    return t ? PyBool_FromLong(t->type->is_complete(gil())) : nullptr;
}

PyMethodDef methods[] = {
    {"new_cell", new_cell, METH_VARARGS, "new_cell(name) -> index of a new, empty cell"},
    {"cell_get_or_init", cell_get_or_init, METH_VARARGS, "cell_get_or_init(index, init) -> the stored object"},
    {"cell_get", cell_get, METH_VARARGS, "cell_get(index) -> the stored object or None"},
    {"new_lazy_type", new_lazy_type, METH_VARARGS,
     "new_lazy_type(name, [attribute names], hook) -> index; hook(name, early_type) computes each"},
    {"lazy_type_get", lazy_type_get, METH_VARARGS, "lazy_type_get(index) -> the type"},
    {"lazy_type_is_complete", lazy_type_is_complete, METH_VARARGS, "lazy_type_is_complete(index) -> bool"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "gilonce_capi_probe",
                          "gil_once_cell and lazy_type through the plain C API, for greenlet tests", -1, methods,
                          nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit_gilonce_capi_probe() { return PyModule_Create(&module_def); }
