// colors: an example extension module, written against the C API, whose class `Color`
// has class attributes that are Colors (Color.RED, Color.GREEN, Color.BLUE) and one,
// Color.DEFAULT, computed by Python code (an import) that may release the GIL.
//
// What it shows: gilonce::lazy_type builds the type on first use -- here the first access
// to `colors.Color`, through the module's __getattr__ (PEP 562) -- safely when several
// threads ask at once and when the class attributes need the class itself.
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

namespace {

// ---- Instance state ---------------------------------------------------------------------

struct color_object {
    PyObject_HEAD
    PyObject* name;  // a str
};

// Color(name): the only constructor.
PyObject* color_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
    static const char* keywords[] = {"name", nullptr};
    PyObject* name = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "U:Color", const_cast<char**>(keywords), &name)) return nullptr;
    auto* self = reinterpret_cast<color_object*>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    Py_INCREF(name);
    self->name = name;
    return reinterpret_cast<PyObject*>(self);
}

// Releases the name and the reference every heap-type instance holds on its type.
void color_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    Py_XDECREF(reinterpret_cast<color_object*>(self)->name);
    type->tp_free(self);
    Py_DECREF(type);
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
    {Py_tp_repr, reinterpret_cast<void*>(color_repr)},
    {Py_tp_richcompare, reinterpret_cast<void*>(color_richcompare)},
    {Py_tp_hash, reinterpret_cast<void*>(color_hash)},
    {Py_tp_members, color_members},
    {0, nullptr},
};

PyType_Spec color_spec = {"colors.Color", sizeof(color_object), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, color_slots};

// --8<-- [start:lazy_color]
extern gilonce::lazy_type color_type;

// A class-attribute factory making Color(name). It asks for the type while the class
// attributes are being computed: in this execution context, lazy_type hands out the ready type.
template <const char* Name>
PyObject* make_color(gilonce::gil_token gil) {
    PyTypeObject* type = color_type.get(gil);
    return type ? PyObject_CallFunction(reinterpret_cast<PyObject*>(type), "s", Name) : nullptr;
}
constexpr char red[] = "red", green[] = "green", blue[] = "blue";

// Color.DEFAULT runs Python code (an import) that may release the GIL.
PyObject* make_default(gilonce::gil_token gil) {
    gilonce::py_ref os = gilonce::py_ref::steal(PyImport_ImportModule("os"));
    if (!os) return nullptr;
    gilonce::py_ref name = gilonce::py_ref::steal(
        PyObject_CallMethod(os.get(), "getenv", "ss", "COLORS_DEFAULT", "red"));
    PyTypeObject* type = color_type.get(gil);
    if (!name || type == nullptr) return nullptr;
    return PyObject_CallOneArg(reinterpret_cast<PyObject*>(type), name.get());
}

gilonce::lazy_type color_type(&color_spec, {
    {"RED", make_color<red>},
    {"GREEN", make_color<green>},
    {"BLUE", make_color<blue>},
    {"DEFAULT", make_default},
});
// --8<-- [end:lazy_color]

// ---- Module -------------------------------------------------------------------------------

// Module-level __getattr__ (PEP 562): `colors.Color` builds the type on first access.
PyObject* colors_getattr(PyObject*, PyObject* name) {
    if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "Color") == 0) {
        PyTypeObject* type = color_type.get(gilonce::gil_token::assume_held());
        Py_XINCREF(type);
        return reinterpret_cast<PyObject*>(type);
    }
    return PyErr_Format(PyExc_AttributeError, "module 'colors' has no attribute %R", name);
}

// colors.is_built(): whether Color exists yet (for tests of the laziness itself).
PyObject* colors_is_built(PyObject*, PyObject*) {
    return PyBool_FromLong(color_type.is_complete(gilonce::gil_token::assume_held()));
}

PyMethodDef colors_methods[] = {
    {"__getattr__", colors_getattr, METH_O, "Builds colors.Color on first access."},
    {"is_built", colors_is_built, METH_NOARGS, "Whether colors.Color has been built."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef colors_module = {PyModuleDef_HEAD_INIT, "colors",
                             "An example of gilonce::lazy_type: Color, whose class attributes are Colors.",
                             -1, colors_methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

// Single-phase initialization: the lazy type is process-wide state, so the module does not
// claim to support sub-interpreters.
PyMODINIT_FUNC PyInit_colors() { return PyModule_Create(&colors_module); }
