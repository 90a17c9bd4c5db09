// gilonce/errors.hpp: re-raise the current Python exception as a clearer one, keeping the
// original as its __cause__ ("raise RuntimeError(...) from error", from C).
//
// When a lazy initializer fails, the user needs two things: which value could not be
// built (the new message) and why (the original error, which must not be lost).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <exception>
#include <new>

#include "compiler.hpp"

namespace gilonce {

/// Replaces the current Python exception with `exception_type(message)`, whose
/// `__cause__` (and `__context__`) is the replaced exception, with its traceback.
/// If no exception is set, just raises `exception_type(message)`.
/// Requires: the GIL is held. Afterwards an exception is always set.
inline void raise_from_current(PyObject* exception_type, const char* message) {
    PyObject *cause_type, *cause, *cause_tb;
    PyErr_Fetch(&cause_type, &cause, &cause_tb);
    PyErr_NormalizeException(&cause_type, &cause, &cause_tb);
    if (cause != nullptr && cause_tb != nullptr) PyException_SetTraceback(cause, cause_tb);
    PyErr_SetString(exception_type, message);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (cause != nullptr) {
        Py_INCREF(cause);
        PyException_SetContext(value, cause);  // steals one reference
        PyException_SetCause(value, cause);    // steals the other; sets __suppress_context__
    }
    Py_XDECREF(cause_type);
    Py_XDECREF(cause_tb);
    PyErr_Restore(type, value, tb);
}

/// Like `raise_from_current`, except when the current exception is a `BaseException` that
/// is not an `Exception` (`KeyboardInterrupt`, `SystemExit`, greenlet's `GreenletExit`): it
/// asks the program to stop, and wrapping it would hide it from `except KeyboardInterrupt`,
/// so it is left as it is. Requires: the GIL is held. Afterwards an exception is always set.
inline void raise_from_current_unless_interrupt(PyObject* exception_type, const char* message) {
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) return;
    raise_from_current(exception_type, message);
}

namespace detail {

/// Runs `code()` (returning a new reference, or null with a Python exception set) and turns
/// a C++ exception it throws into a Python one: `MemoryError` for `std::bad_alloc`,
/// `RuntimeError("C++ exception: WHAT")` otherwise, chained from any Python exception
/// already set. A forced unwind (`pthread_exit`) is never caught: it goes on untouched.
/// Requires: the GIL is held, and `code` returns or throws with it held.
template <class Code>
GILONCE_FORCED_UNWIND_HANDLER PyObject* call_reporting_cpp_exceptions(Code&& code) {
    try {
        return code();
#if defined(__GLIBCXX__)
    } catch (abi::__forced_unwind&) {
        throw;  // the thread is being torn down without the GIL: no C-API call may follow
#endif
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (const std::exception& e) {
        PyObject* text = PyUnicode_FromFormat("C++ exception: %s", e.what());
        raise_from_current(PyExc_RuntimeError, text ? PyUnicode_AsUTF8(text) : "C++ exception");
        Py_XDECREF(text);
    } catch (...) {
        raise_from_current(PyExc_RuntimeError, "unknown C++ exception");
    }
    return nullptr;
}

}  // namespace detail
}  // namespace gilonce
