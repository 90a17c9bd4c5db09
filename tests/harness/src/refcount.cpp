// harness/refcount.cpp: the total reference count and regrtest-style batches (see refcount.hpp).
#include "harness/refcount.hpp"

#include <cstring>
#include <stdexcept>

namespace harness {

namespace {
// Borrowed from the sys module's dict; null in a release interpreter.
PyObject* gettotalrefcount() { return PySys_GetObject("gettotalrefcount"); }
}  // namespace

bool refs_counted(gilonce::gil_token) {
#ifndef Py_REF_DEBUG
    // Built against a release pyconfig.h but running in a debug interpreter: this file's
    // increfs and decrefs would not reach the total, and every reading would drift.
    if (gettotalrefcount() != nullptr)
        throw std::logic_error("harness/refcount.cpp was compiled without Py_REF_DEBUG for a debug interpreter");
#endif
    return gettotalrefcount() != nullptr;
}

Py_ssize_t settled_total_refs(gilonce::gil_token) {
    // A finalizer run by one collection may free more: collect until nothing is found.
    for (int i = 0; i < 10 && PyGC_Collect() > 0; ++i) {
    }
    PyObject* read = gettotalrefcount();
    if (read == nullptr) throw std::runtime_error(refs_not_counted);
    // The result is made after the total is read, and freed before the next read: every
    // reading sees the same transient references, so they cancel out in a delta.
    PyObject* total = PyObject_CallNoArgs(read);
    const Py_ssize_t value = total != nullptr ? PyLong_AsSsize_t(total) : -1;
    Py_XDECREF(total);
    if (value < 0) {
        PyErr_Clear();
        throw std::runtime_error("sys.gettotalrefcount() failed");
    }
    return value;
}

std::vector<Py_ssize_t> batch_deltas(gilonce::gil_token gil, const std::function<void(gilonce::gil_token)>& round,
                                     batch_plan plan) {
    for (int i = 0; i < plan.warmups; ++i) round(gil);
    std::vector<Py_ssize_t> deltas;
    Py_ssize_t before = settled_total_refs(gil);
    for (int b = 0; b < plan.batches; ++b) {
        for (int i = 0; i < plan.rounds; ++i) round(gil);
        const Py_ssize_t after = settled_total_refs(gil);
        deltas.push_back(after - before);
        before = after;
    }
    return deltas;
}

namespace {
int collectable_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));  // heap types' instances own a reference to their type
    return 0;
}
void collectable_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    type->tp_free(self);
    Py_DECREF(type);
}
}  // namespace

PyType_Slot collectable_slots[] = {{Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
                                   {Py_tp_traverse, reinterpret_cast<void*>(collectable_traverse)},
                                   {Py_tp_dealloc, reinterpret_cast<void*>(collectable_dealloc)},
                                   {0, nullptr}};

long live_types_named(gilonce::gil_token, const char* name) {
    PyGC_Collect();
    PyObject* gc = PyImport_ImportModule("gc");
    PyObject* objects = gc != nullptr ? PyObject_CallMethod(gc, "get_objects", nullptr) : nullptr;
    Py_XDECREF(gc);
    if (objects == nullptr) return -1;
    long count = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objects); ++i) {
        PyObject* o = PyList_GET_ITEM(objects, i);
        if (PyType_Check(o) && std::strcmp(reinterpret_cast<PyTypeObject*>(o)->tp_name, name) == 0) ++count;
    }
    Py_DECREF(objects);
    return count;
}

}  // namespace harness
