// gilonce/errors.hpp: the errors a gilonce cell reports, and `raise_from_current`, which
// re-raises the current Python exception as a clearer one with the original as `__cause__`:
// when a lazy value cannot be built, the user needs both which value (the new message) and
// why (the original error, which must not be lost).
#pragma once

#include <stdexcept>

#include "detail/python.hpp"

namespace gilonce {

/// An initializer asked for the value of the cell it is initializing. Without this error
/// the recursion would never end (a stack overflow) or, for a cell that blocks, never
/// start (a self-deadlock). Raised as a Python `RuntimeError` by the C API flavours.
class reentrant_init_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The value offered is an empty handle (a null `py_ref`, `pybind11::object` or pointer):
/// a cell never stores "full with nothing". A Python exception set by the initializer (the
/// usual reason for an empty handle) is left set.
class empty_value_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Tag for a cell's `take` and `clear`: the caller states that no reference or pointer the
/// cell handed out is still in use, since emptying the cell invalidates every one of them.
struct invalidates_references_t {
    explicit constexpr invalidates_references_t() = default;
};
/// The value of the tag: `cell.take(gil, gilonce::invalidates_references)`.
inline constexpr invalidates_references_t invalidates_references{};

/// Replaces the current Python exception with `exception_type(message)`, whose `__cause__`
/// (and `__context__`) is the replaced one, traceback included; with no current exception,
/// just raises `exception_type(message)`. Requires: the GIL is held. Afterwards an exception
/// is always set.
inline void raise_from_current(PyObject* exception_type, const char* message) {
    PyObject* cause = detail::take_exception();
    PyErr_SetString(exception_type, message);
    if (cause == nullptr) return;
    PyObject* raised = detail::take_exception();
    Py_INCREF(cause);
    PyException_SetContext(raised, cause);  // steals one reference
    PyException_SetCause(raised, cause);    // steals the other; sets __suppress_context__
    detail::restore_exception(raised);
}

/// As `raise_from_current`, except that a `BaseException` that is not an `Exception`
/// (`KeyboardInterrupt`, `SystemExit`, greenlet's `GreenletExit`) is left as it is: it asks
/// the program to stop, and wrapping it would hide it from `except KeyboardInterrupt`.
inline void raise_from_current_unless_interrupt(PyObject* exception_type, const char* message) {
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) return;
    raise_from_current(exception_type, message);
}

}  // namespace gilonce
