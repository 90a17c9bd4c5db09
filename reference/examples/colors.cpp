// colors: an example extension module, written against the C API, whose class `Color`
// has class attributes that are Colors (Color.RED, Color.GREEN, Color.BLUE) and one,
// Color.DEFAULT, computed by Python code (an import) that may release the GIL.
//
// What it shows: gilonce::lazy_type builds the type on first use -- here the first access
// to `colors.Color`, through the module's __getattr__ (PEP 562) -- safely when several
// threads ask at once and when the class attributes need the class itself. The lazy type
// lives in module state (multi-phase initialization, PEP 489; isolation, PEP 630): every
// interpreter that imports `colors` gets its own module, its own Color, guarded by its own
// GIL, and releases it when that interpreter ends or is finalized. Color's own slots find
// that state from the type with PyType_GetModuleByDef (colors.made() counts the Colors).
//
// In Python terms:
//     class Color:
//         def __init__(self, name: str): self.name = name   # read-only
//         RED = Color("red"); GREEN = Color("green"); BLUE = Color("blue")
//         DEFAULT = Color(os.environ.get("COLORS_DEFAULT", "red"))
//     Color is immutable: Color.RED = ... raises TypeError.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <gilonce/lazy_type.hpp>

#include <atomic>

namespace {

// ---- Instance state ---------------------------------------------------------------------

struct color_object {
    PyObject_HEAD
    PyObject* name;  // a str
};

struct colors_state;
colors_state* state_of_type(PyTypeObject* type);
void count_color(colors_state* state);

// Color(name): the only constructor. Counts the Color in its module's state, found from
// the type (PEP 630), never from a C static: each interpreter counts its own.
PyObject* color_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
    static const char* keywords[] = {"name", nullptr};
    PyObject* name = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "U:Color", const_cast<char**>(keywords), &name)) return nullptr;
    colors_state* state = state_of_type(type);
    if (state == nullptr) return nullptr;
    auto* self = reinterpret_cast<color_object*>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    Py_INCREF(name);
    self->name = name;
    count_color(state);
    return reinterpret_cast<PyObject*>(self);
}

// Releases the name and the reference every heap-type instance holds on its type.
void color_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_XDECREF(reinterpret_cast<color_object*>(self)->name);
    type->tp_free(self);
    Py_DECREF(type);
}

// The collector must see each instance's reference to its type: Color.RED is a Color, so
// type -> dict -> RED -> type is a cycle, collectable only if RED reports its edge.
int color_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(reinterpret_cast<color_object*>(self)->name);
    return 0;
}

// colors.Color('red'), or the subclass's own name.
PyObject* color_repr(PyObject* self) {
    return PyUnicode_FromFormat("%s(%R)", Py_TYPE(self)->tp_name, reinterpret_cast<color_object*>(self)->name);
}

// Colors are equal when their names are; other comparisons are not supported.
PyObject* color_richcompare(PyObject* a, PyObject* b, int op) {
    // Both operands are Colors (or instances of Python subclasses) when they share this slot.
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(b)->tp_richcompare != Py_TYPE(a)->tp_richcompare)
        Py_RETURN_NOTIMPLEMENTED;
    return PyObject_RichCompare(reinterpret_cast<color_object*>(a)->name, reinterpret_cast<color_object*>(b)->name, op);
}

// Consistent with equality.
Py_hash_t color_hash(PyObject* self) { return PyObject_Hash(reinterpret_cast<color_object*>(self)->name); }

PyMemberDef color_members[] = {
    {"name", T_OBJECT_EX, offsetof(color_object, name), READONLY, "The color's name."},
    {nullptr, 0, 0, 0, nullptr},
};

// ---- Type definition ----------------------------------------------------------------------

PyType_Slot color_slots[] = {
    {Py_tp_doc, const_cast<char*>("Color(name): a named color. Color.RED, .GREEN, .BLUE and .DEFAULT are Colors.")},
    {Py_tp_new, reinterpret_cast<void*>(color_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(color_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(color_traverse)},
    {Py_tp_repr, reinterpret_cast<void*>(color_repr)},
    {Py_tp_richcompare, reinterpret_cast<void*>(color_richcompare)},
    {Py_tp_hash, reinterpret_cast<void*>(color_hash)},
    {Py_tp_members, color_members},
    {0, nullptr},
};

PyType_Spec color_spec = {"colors.Color", sizeof(color_object), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, color_slots};

// --8<-- [start:lazy_color]
// ---- Module state: the lazy Color of this module object, so of this interpreter ----------

struct colors_state {
    bool constructed;  // false until colors_exec ran (CPython hands out zeroed memory)
    gilonce::lazy_type color_type;
    std::atomic<Py_ssize_t> colors_made;  // Colors made by this module's types (free-threaded: by any thread)
};

extern PyModuleDef colors_module;

colors_state* state_of(PyObject* module) {
    auto* state = static_cast<colors_state*>(PyModule_GetState(module));
    return state != nullptr && state->constructed ? state : nullptr;
}

// The state of the module that defined `type` or the base of it that this module made:
// PyType_GetModuleByDef walks the MRO, so a Python subclass of Color finds it too.
colors_state* state_of_type(PyTypeObject* type) {
    PyObject* module = PyType_GetModuleByDef(type, &colors_module);  // borrowed
    if (module == nullptr) return nullptr;
    colors_state* state = state_of(module);
    if (state == nullptr) PyErr_SetString(PyExc_RuntimeError, "colors: the module's state is gone");
    return state;
}

void count_color(colors_state* state) { state->colors_made.fetch_add(1, std::memory_order_relaxed); }

// A class-attribute factory making Color(name). It asks for the type while the class
// attributes are being computed: in this execution context, lazy_type hands out the ready type.
PyObject* make_color(colors_state* state, const char* name, gilonce::gil_token gil) {
    PyTypeObject* type = state->color_type.get(gil);
    return type ? PyObject_CallFunction(reinterpret_cast<PyObject*>(type), "s", name) : nullptr;
}

// Color.DEFAULT runs Python code (an import) that may release the GIL.
PyObject* make_default(colors_state* state, gilonce::gil_token gil) {
    gilonce::py_ref os = gilonce::py_ref::steal(PyImport_ImportModule("os"));
    if (!os) return nullptr;
    gilonce::py_ref name = gilonce::py_ref::steal(
        PyObject_CallMethod(os.get(), "getenv", "ss", "COLORS_DEFAULT", "red"));
    PyTypeObject* type = state->color_type.get(gil);
    if (!name || type == nullptr) return nullptr;
    return PyObject_CallOneArg(reinterpret_cast<PyObject*>(type), name.get());
}

// Py_mod_exec: runs once per module object, in the interpreter importing it.
int colors_exec(PyObject* module) {
    auto* state = static_cast<colors_state*>(PyModule_GetState(module));
    auto color = [state](const char* name) {
        return [state, name](gilonce::gil_token gil) { return make_color(state, name, gil); };
    };
    ::new (&state->color_type) gilonce::lazy_type(
        &color_spec,
        {{"RED", color("red")},
         {"GREEN", color("green")},
         {"BLUE", color("blue")},
         {"DEFAULT", [state](gilonce::gil_token gil) { return make_default(state, gil); }}},
        {}, /*immutable=*/true, module);  // the type belongs to this module (PyType_GetModuleByDef)
    ::new (&state->colors_made) std::atomic<Py_ssize_t>(0);
    state->constructed = true;
    return 0;
}

// The collector sees the type the state owns; clearing and freeing release it.
int colors_traverse(PyObject* module, visitproc visit, void* arg) {
    colors_state* state = state_of(module);
    return state != nullptr ? state->color_type.traverse(visit, arg) : 0;
}
int colors_clear(PyObject* module) {
    if (colors_state* state = state_of(module))
        state->color_type.clear(gilonce::gil_token::assume_held(), gilonce::invalidates_references);
    return 0;
}
void colors_free(void* module) {
    colors_clear(static_cast<PyObject*>(module));
    if (colors_state* state = state_of(static_cast<PyObject*>(module))) {
        state->color_type.~lazy_type();
        state->constructed = false;
    }
}
// --8<-- [end:lazy_color]

// ---- Module -------------------------------------------------------------------------------

// Module-level __getattr__ (PEP 562): `colors.Color` builds the type on first access.
PyObject* colors_getattr(PyObject* module, PyObject* name) {
    colors_state* state = state_of(module);
    if (state != nullptr && PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "Color") == 0) {
        PyTypeObject* type = state->color_type.get(gilonce::gil_token::assume_held());
        Py_XINCREF(type);
        return reinterpret_cast<PyObject*>(type);
    }
    return PyErr_Format(PyExc_AttributeError, "module 'colors' has no attribute %R", name);
}

// colors.is_built(): whether this module's Color exists yet (for tests of the laziness).
PyObject* colors_is_built(PyObject* module, PyObject*) {
    colors_state* state = state_of(module);
    return PyBool_FromLong(state != nullptr && state->color_type.is_complete(gilonce::gil_token::assume_held()));
}

// colors.made(): how many Colors this module's Color (and its subclasses) have made.
PyObject* colors_made(PyObject* module, PyObject*) {
    colors_state* state = state_of(module);
    return PyLong_FromSsize_t(state != nullptr ? state->colors_made.load(std::memory_order_relaxed) : 0);
}

PyMethodDef colors_methods[] = {
    {"__getattr__", colors_getattr, METH_O, "Builds colors.Color on first access."},
    {"is_built", colors_is_built, METH_NOARGS, "Whether colors.Color has been built."},
    {"made", colors_made, METH_NOARGS, "How many Colors this module's Color type has made."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef_Slot colors_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(colors_exec)},
#if PY_VERSION_HEX >= 0x030C0000
    // No static Python state: each interpreter may have its own GIL (PEP 684).
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    // No GIL needed (PEP 703): lazy_type builds Color exactly once in stage 1 and publishes
    // its class attributes in one critical section; the count is atomic. (Free-threaded
    // builds only; elsewhere the slot changes nothing.)
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, nullptr},
};

PyModuleDef colors_module = {PyModuleDef_HEAD_INIT, "colors",
                             "An example of gilonce::lazy_type: Color, whose class attributes are Colors.",
                             sizeof(colors_state), colors_methods, colors_slots,
                             colors_traverse, colors_clear, colors_free};

}  // namespace

// Multi-phase initialization (PEP 489): the module object is made, then colors_exec runs.
PyMODINIT_FUNC PyInit_colors() { return PyModuleDef_Init(&colors_module); }
