// Step 05: the Color instance type's slots (see color_object.hpp).
#include "color_object.hpp"

#include <structmember.h>

namespace step05 {
namespace {

long live_color_count = 0;  // changed only with the GIL held

PyObject* color_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
    static const char* keywords[] = {"name", nullptr};
    PyObject* name = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "U:Color", const_cast<char**>(keywords), &name))
        return nullptr;
    auto* self = reinterpret_cast<color_object*>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    Py_INCREF(name);
    self->name = name;
    ++live_color_count;
    return reinterpret_cast<PyObject*>(self);
}

void color_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    Py_XDECREF(reinterpret_cast<color_object*>(self)->name);
    --live_color_count;
    type->tp_free(self);
    Py_DECREF(type);  // instances of heap types own a reference to their type
}

PyObject* color_repr(PyObject* self) {
    return PyUnicode_FromFormat("%s(%R)", Py_TYPE(self)->tp_name, reinterpret_cast<color_object*>(self)->name);
}

PyObject* color_richcompare(PyObject* a, PyObject* b, int op) {
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, Py_TYPE(a))) Py_RETURN_NOTIMPLEMENTED;
    return PyObject_RichCompare(reinterpret_cast<color_object*>(a)->name,
                                reinterpret_cast<color_object*>(b)->name, op);
}

Py_hash_t color_hash(PyObject* self) { return PyObject_Hash(reinterpret_cast<color_object*>(self)->name); }

PyMemberDef color_members[] = {
    {"name", T_OBJECT_EX, offsetof(color_object, name), READONLY, "The color's name."},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot color_slots[] = {
    {Py_tp_doc, const_cast<char*>("Color(name): a named color.")},
    {Py_tp_new, reinterpret_cast<void*>(color_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(color_dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(color_repr)},
    {Py_tp_richcompare, reinterpret_cast<void*>(color_richcompare)},
    {Py_tp_hash, reinterpret_cast<void*>(color_hash)},
    {Py_tp_members, color_members},
    {0, nullptr},
};

}  // namespace

PyType_Spec color_spec(const char* type_name) {
    return {type_name, sizeof(color_object), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, color_slots};
}

long live_colors() { return live_color_count; }

PyObject* new_color(PyObject* type, const char* name) {
    return PyObject_CallFunction(type, "s", name);
}

}  // namespace step05
