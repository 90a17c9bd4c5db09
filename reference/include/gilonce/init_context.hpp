// gilonce/init_context.hpp: which lazy values the *current execution context* is computing.
//
// Re-entrancy ("this initializer asked for the value it is computing") must be told apart
// from a second, independent caller. A thread-local record cannot do that: greenlets
// (gevent, SQLAlchemy's asyncio layer) run many call stacks on one thread, and switching
// from one initializer to another greenlet that asks for the same value is not recursion.
// A `std::thread::id` record is worse: glibc reuses thread ids, and after fork() a new
// thread can inherit the id of a thread that was computing in the parent.
//
// The record therefore lives in a `contextvars.ContextVar`: each thread, each greenlet and
// each asyncio task has its own context, and a context exists only where its execution
// does, so it cannot outlive a thread, survive a fork into another thread, or be mixed up
// when greenlets finish in any order. The variable is kept in the interpreter's own dict
// (`PyInterpreterState_GetDict`), so each interpreter has its own, created on first use.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>

namespace gilonce {
namespace detail {

/// The ContextVar whose value is a tuple of the addresses (ints) of the lazy values this
/// context is computing, innermost last. Shared by every copy of this header in the
/// process, so the key names the value's format; change the key if the format changes.
/// Requires: the GIL is held. Returns: a borrowed reference, or null with an exception set.
inline PyObject* initializing_var() {
    static constexpr const char key[] = "gilonce.initializing/1";
    PyObject* interp_dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (interp_dict == nullptr) {
        PyErr_SetString(PyExc_SystemError, "gilonce: this interpreter has no per-interpreter dict");
        return nullptr;
    }
    PyObject* var = PyDict_GetItemString(interp_dict, key);  // borrowed; str keys: no error
    if (var != nullptr) return var;
    PyObject* fresh = PyContextVar_New(key, nullptr);
    if (fresh == nullptr) return nullptr;
    // SetDefault: if another copy of this header got there first, its variable is used.
    PyObject* key_object = PyUnicode_FromString(key);
    var = key_object ? PyDict_SetDefault(interp_dict, key_object, fresh) : nullptr;
    Py_XDECREF(key_object);
    Py_DECREF(fresh);
    return var;  // borrowed from the interpreter dict, which keeps it alive
}

/// Whether the current context is computing `what`.
/// Requires: the GIL is held. Returns 1 or 0, or -1 with an exception set.
inline int context_is_initializing(const void* what) {
    PyObject* var = initializing_var();
    if (var == nullptr) return -1;
    PyObject* record = nullptr;
    if (PyContextVar_Get(var, nullptr, &record) < 0) return -1;
    if (record == nullptr) return 0;  // nothing computed in this context yet
    int found = 0;
    const auto address = reinterpret_cast<std::uintptr_t>(what);
    for (Py_ssize_t i = 0; PyTuple_Check(record) && i < PyTuple_GET_SIZE(record) && !found; ++i)
        found = PyLong_AsVoidPtr(PyTuple_GET_ITEM(record, i)) == reinterpret_cast<void*>(address);
    Py_DECREF(record);
    if (PyErr_Occurred()) return -1;
    return found;
}

/// Records, for as long as it lives, that the current context is computing `what`.
/// Requires: the GIL is held at construction and at destruction, and the destructor runs
/// in the same context (true for the initializer's own call: greenlets and tasks switch
/// contexts away and back, but never return into another one).
/// Check `ok()`: false means the record could not be made, with a Python exception set.
/// `abandon()` (for a thread torn down without the GIL) makes the destructor do nothing.
class initializing_scope {
public:
    /// Adds `what` to the current context's record. Requires: the GIL is held.
    explicit initializing_scope(const void* what) {
        PyObject* var = initializing_var();
        if (var == nullptr) return;
        PyObject* outer = nullptr;
        if (PyContextVar_Get(var, nullptr, &outer) < 0) return;
        PyObject* address = PyLong_FromVoidPtr(const_cast<void*>(what));
        PyObject* inner = nullptr;
        if (address != nullptr) {
            PyObject* one = PyTuple_Pack(1, address);
            inner = one == nullptr ? nullptr
                    : outer != nullptr && PyTuple_Check(outer) ? PySequence_Concat(outer, one)
                                                                : (Py_INCREF(one), one);
            Py_XDECREF(one);
        }
        Py_XDECREF(address);
        Py_XDECREF(outer);
        if (inner == nullptr) return;
        token_ = PyContextVar_Set(var, inner);
        Py_DECREF(inner);
        if (token_ != nullptr) var_ = var;
    }
    /// Restores the record as it was before (keeping any Python exception set).
    ~initializing_scope() {
        if (var_ == nullptr) return;
        // Keep an exception raised by the computation while the record is taken down.
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyContextVar_Reset(var_, token_) < 0) PyErr_Clear();  // not in its context: keep going
        Py_DECREF(token_);
        PyErr_Restore(type, value, tb);
    }
    initializing_scope(const initializing_scope&) = delete;
    initializing_scope& operator=(const initializing_scope&) = delete;

    /// Whether the record was made (false: a Python exception is set).
    bool ok() const noexcept { return var_ != nullptr; }
    /// Makes the destructor do nothing, leaking the record's token: for a thread torn
    /// down without the GIL, where no C-API call is allowed.
    void abandon() noexcept { var_ = nullptr; }

private:
    PyObject* var_ = nullptr;    // borrowed from the interpreter dict
    PyObject* token_ = nullptr;  // owned
};

}  // namespace detail
}  // namespace gilonce
