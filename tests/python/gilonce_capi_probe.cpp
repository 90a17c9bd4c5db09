// gilonce_capi_probe: gil_once_cell, lazy_type and per_interpreter_cell exposed through the
// plain C API, for the greenlet tests. pybind11 cannot serve there: its own per-call
// bookkeeping (loader_life_support) is thread-local and aborts the process when greenlets
// that switched inside pybind11 calls finish out of order. Cells and types are numbered and
// live as long as the process (a test makes fresh ones); a module-state Color lives in a
// module object of its own (PEP 489/630), made by new_state_module.
#include <gilonce/gilonce.hpp>
#include <gilonce/per_interpreter.hpp>

#include <deque>
#include <memory>
#include <new>
#include <optional>
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

// ---- per_interpreter_cell --------------------------------------------------------------

struct named_per_interpreter_cell {
    std::string name;
    gilonce::per_interpreter_cell<py_ref> cell;
    explicit named_per_interpreter_cell(std::string n) : name(std::move(n)), cell(name.c_str()) {}
};
// Never shrinks and never destroyed: the interpreters' tables keep pointers to the cells.
std::deque<named_per_interpreter_cell>& per_interpreter_cells = *new std::deque<named_per_interpreter_cell>;

PyObject* new_per_interpreter_cell(PyObject*, PyObject* args) {
    const char* name;
    if (!PyArg_ParseTuple(args, "s", &name)) return nullptr;
    per_interpreter_cells.emplace_back(name);
    return PyLong_FromSize_t(per_interpreter_cells.size() - 1);
}

named_per_interpreter_cell* per_interpreter_cell_at(Py_ssize_t index) {
    if (index < 0 || static_cast<std::size_t>(index) >= per_interpreter_cells.size()) {
        PyErr_SetString(PyExc_IndexError, "no such per-interpreter cell");
        return nullptr;
    }
    return &per_interpreter_cells[static_cast<std::size_t>(index)];
}

PyObject* per_interpreter_get_or_init(PyObject*, PyObject* args) {
    Py_ssize_t index;
    PyObject* init;
    if (!PyArg_ParseTuple(args, "nO", &index, &init)) return nullptr;
    named_per_interpreter_cell* c = per_interpreter_cell_at(index);
    if (c == nullptr) return nullptr;
    const py_ref* value = c->cell.get_or_try_init(gil(), [&]() -> std::optional<py_ref> {
        py_ref made = py_ref::steal(PyObject_CallNoArgs(init));  // may switch greenlets
        if (!made) return std::nullopt;
        return made;
    });
    return value ? Py_NewRef(value->get()) : nullptr;
}

PyObject* per_interpreter_get(PyObject*, PyObject* args) {
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "n", &index)) return nullptr;
    named_per_interpreter_cell* c = per_interpreter_cell_at(index);
    if (c == nullptr) return nullptr;
    const py_ref* value = c->cell.get(gil());
    if (value == nullptr && PyErr_Occurred()) return nullptr;
    return Py_NewRef(value ? value->get() : Py_None);
}

// ---- a module-state Color: a lazy_type in a module object's state -----------------------

struct color_state {
    py_ref hook;                          // hook(name, early_type) computes each attribute
    std::vector<std::string> attributes;  // outlive `color`, which keeps their characters
    std::optional<gilonce::lazy_type> color;
};
PyType_Slot state_color_slots[] = {{0, nullptr}};
PyType_Spec state_color_spec = {"greenletstate.Color", static_cast<int>(sizeof(PyObject)), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, state_color_slots};
extern PyModuleDef state_module_def;

// The module's state memory (zeroed by CPython): `color` is constructed by exec.
struct color_module_state {
    bool constructed;
    color_state color;
};

// Null (with no exception) before exec ran, or after m_free.
color_state* color_state_of(PyObject* module) {
    auto* memory = static_cast<color_module_state*>(PyModule_GetState(module));
    return memory != nullptr && memory->constructed ? &memory->color : nullptr;
}

int state_exec(PyObject* module) {
    auto* memory = static_cast<color_module_state*>(PyModule_GetState(module));
    ::new (&memory->color) color_state();
    memory->constructed = true;
    return 0;
}
int state_traverse(PyObject* module, visitproc visit, void* arg) {
    color_state* state = color_state_of(module);
    if (state == nullptr) return 0;
    Py_VISIT(state->hook.get());
    return state->color ? state->color->traverse(visit, arg) : 0;
}
int state_clear(PyObject* module) {
    if (color_state* state = color_state_of(module)) {
        if (state->color) state->color->clear(gil(), gilonce::invalidates_references);
        gilonce::detail::release_now(state->hook);
    }
    return 0;
}
void state_free(void* module) {
    state_clear(static_cast<PyObject*>(module));
    if (color_state* state = color_state_of(static_cast<PyObject*>(module))) {
        state->~color_state();
        static_cast<color_module_state*>(PyModule_GetState(static_cast<PyObject*>(module)))->constructed = false;
    }
}
PyModuleDef_Slot state_module_slots[] = {{Py_mod_exec, reinterpret_cast<void*>(state_exec)}, {0, nullptr}};
PyModuleDef state_module_def = {PyModuleDef_HEAD_INIT, "greenletstate", nullptr,
                                sizeof(color_module_state), nullptr,
                                state_module_slots, state_traverse, state_clear, state_free};

PyObject* new_state_module(PyObject*, PyObject* args) {
    PyObject *names, *hook;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &names, &hook)) return nullptr;
    py_ref machinery = py_ref::steal(PyImport_ImportModule("importlib.machinery"));
    py_ref spec = machinery ? py_ref::steal(PyObject_CallMethod(machinery.get(), "ModuleSpec", "sO", "greenletstate", Py_None)) : py_ref();
    py_ref module = spec ? py_ref::steal(PyModule_FromDefAndSpec(&state_module_def, spec.get())) : py_ref();
    if (!module || PyModule_ExecDef(module.get(), &state_module_def) != 0) return nullptr;
    color_state* state = color_state_of(module.get());
    state->hook = py_ref::borrow(hook);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); ++i) {
        const char* attribute = PyUnicode_AsUTF8(PyList_GET_ITEM(names, i));
        if (attribute == nullptr) return nullptr;
        state->attributes.emplace_back(attribute);
    }
    std::vector<gilonce::class_attribute> made;
    for (const std::string& attribute : state->attributes) {
        const char* attribute_name = attribute.c_str();
        made.push_back({attribute_name, [state, attribute_name](gil_token token) -> PyObject* {
                            PyTypeObject* early = state->color->get(token);
                            if (early == nullptr) return nullptr;
                            return PyObject_CallFunction(state->hook.get(), "sO", attribute_name, early);
                        }});
    }
    state->color.emplace(&state_color_spec, std::move(made), std::function<PyObject*(gil_token)>{}, true, module.get());
    return module.release();
}

color_state* state_module_arg(PyObject* args) {
    PyObject* module;
    if (!PyArg_ParseTuple(args, "O", &module)) return nullptr;
    color_state* state = PyModule_Check(module) && PyModule_GetDef(module) == &state_module_def ? color_state_of(module) : nullptr;
    if (state == nullptr) PyErr_SetString(PyExc_TypeError, "not a live module made by new_state_module");
    return state;
}

PyObject* state_module_color(PyObject*, PyObject* args) {
    color_state* state = state_module_arg(args);
    if (state == nullptr) return nullptr;
    PyTypeObject* type = state->color->get(gil());
    return type ? Py_NewRef(reinterpret_cast<PyObject*>(type)) : nullptr;
}

PyObject* state_module_color_is_complete(PyObject*, PyObject* args) {
    color_state* state = state_module_arg(args);
    return state ? PyBool_FromLong(state->color->is_complete(gil())) : nullptr;
}

PyMethodDef methods[] = {
    {"new_per_interpreter_cell", new_per_interpreter_cell, METH_VARARGS,
     "new_per_interpreter_cell(name) -> index of a new per_interpreter_cell<py_ref>"},
    {"per_interpreter_get_or_init", per_interpreter_get_or_init, METH_VARARGS,
     "per_interpreter_get_or_init(index, init) -> this interpreter's stored object"},
    {"per_interpreter_get", per_interpreter_get, METH_VARARGS, "per_interpreter_get(index) -> the stored object or None"},
    {"new_state_module", new_state_module, METH_VARARGS,
     "new_state_module([attribute names], hook) -> a module whose state holds a lazy_type Color (module argument)"},
    {"state_module_color", state_module_color, METH_VARARGS, "state_module_color(module) -> its Color"},
    {"state_module_color_is_complete", state_module_color_is_complete, METH_VARARGS,
     "state_module_color_is_complete(module) -> bool"},
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
