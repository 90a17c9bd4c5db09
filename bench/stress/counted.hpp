// stress/counted.hpp: the objects the stress creates, counted while alive.
//
// Every value a factory makes is a new instance of a counted type, so that two
// initializers never return the same object by accident (as small ints or interned
// strings would), and so that a round can prove it left nothing behind: after the cell or
// type is destroyed and a collection runs, no instance may be alive.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace stress {

/// Instances of the counted types alive now. Read and written under the GIL.
inline long live_instances = 0;

inline PyObject* counted_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
    PyObject* self = PyType_GenericNew(type, args, kwds);
    if (self != nullptr) ++live_instances;
    return self;
}

// GC-aware: a class attribute that is an instance of its own type is a cycle
// (type -> dict -> instance -> type), which only the collector can free.
inline void counted_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    --live_instances;
    type->tp_free(self);
    Py_DECREF(type);  // every heap-type instance holds its type
}

inline int counted_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    return 0;
}

inline PyType_Slot counted_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(counted_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(counted_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(counted_traverse)},
    {0, nullptr},
};

/// The values stored in the cell: one type, made once (values_type()).
inline PyType_Spec value_spec = {"stress.Value", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                 counted_slots};

/// The lazily built type, a fresh one each round. Mutable as specified: gilonce's
/// lazy_type makes it immutable itself, and the naive type must be able to set attributes.
inline PyType_Spec color_spec = {"stress.Color", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
                                 counted_slots};

}  // namespace stress
