// gilonce/detail/python.hpp: the one include of Python.h, and the C-API calls whose spelling
// depends on the Python version, each behind one function.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include "build.hpp"

#if PY_VERSION_HEX < 0x030A0000
#error "gilonce needs CPython 3.10 or newer (it is tested on 3.11, 3.13 and 3.14)"
#endif

namespace gilonce::detail {

/// The calling thread's attached thread state, or null; never fails, never aborts.
/// (Before 3.13 the only such call is the private `_PyThreadState_UncheckedGet`.)
inline PyThreadState* attached_thread_state() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

/// Whether Py_Finalize has begun. (Before 3.13: the private `_Py_IsFinalizing`.)
inline bool interpreter_is_finalizing() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

/// True if the calling thread holds the GIL of a live interpreter. Safe at any time, before
/// Py_Initialize and after Py_Finalize. Not `PyGILState_Check()`, which answers 1 on every
/// thread once a sub-interpreter has existed (3.11) and must not be called after Py_Finalize.
/// On 3.11 the "current" state is one global, the GIL holder's: matching this thread's id
/// means this thread holds it. Limit: a thread state attached on a thread other than its
/// creator keeps the creator's id, and gets a false "no".
inline bool this_thread_holds_the_gil() noexcept {
    PyThreadState* current = attached_thread_state();
    return current != nullptr && current->thread_id == PyThread_get_thread_ident();
}

/// Takes the current exception off the thread state (null if none), normalized, with its
/// traceback attached. Requires: the GIL is held. Before 3.12 normalizing may run Python code
/// (the exception's `__init__`), so a forced unwind may pass: not `noexcept`.
inline PyObject* take_exception() {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != nullptr && tb != nullptr) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/// Sets `exception` (an owned reference, or null for none) as the current exception.
/// Requires: the GIL is held.
inline void restore_exception(PyObject* exception) noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exception);
#else
    if (exception == nullptr) return PyErr_Restore(nullptr, nullptr, nullptr);  // clears, as 3.12 does
    PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(exception));
    Py_INCREF(type);
    PyErr_Restore(type, exception, PyException_GetTraceback(exception));
#endif
}

/// The current exception (if any), set aside as it is, without running Python code, until
/// `put_back`. Requires: the GIL is held.
struct set_aside_exception {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject* exception = PyErr_GetRaisedException();  // normalized when raised, since 3.12
    void put_back() noexcept { PyErr_SetRaisedException(exception); }
#else
    PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
    set_aside_exception() noexcept { PyErr_Fetch(&type, &value, &traceback); }  // not normalized
    void put_back() noexcept { PyErr_Restore(type, value, traceback); }
#endif
};

/// `dict[key]` as a new reference in `*found` (null if absent). Returns 1, 0, or -1 with an
/// exception set. (3.13+: PyDict_GetItemRef, safe on a free-threaded build.)
inline int dict_get_ref(PyObject* dict, PyObject* key, PyObject** found) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemRef(dict, key, found);
#else
    *found = PyDict_GetItemWithError(dict, key);
    Py_XINCREF(*found);
    return *found != nullptr ? 1 : PyErr_Occurred() ? -1 : 0;
#endif
}

}  // namespace gilonce::detail
