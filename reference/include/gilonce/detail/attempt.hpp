// gilonce/detail/attempt.hpp: running user code, and the one way gilonce survives a thread
// that is torn down inside it.
//
// During Py_Finalize, CPython up to 3.13 ends a daemon thread that wants the GIL back with
// `pthread_exit`, which glibc carries out as a *forced unwind* (`abi::__forced_unwind`)
// through every C++ frame. That thread holds no GIL and the interpreter may be gone, so
// while it unwinds no C-API call is allowed, and the unwind must not start inside a
// destructor (it cannot leave one: the process would end). gilonce meets it with one rule.
//
// Invariant of the holders: whatever a slow path owns while Python code may run is held by
// an object whose destructor only *abandons* it (leaks a reference, leaves a record linked,
// gives up a claim without the interpreter) and never calls the C API. The normal path lets
// go explicitly, in ordinary calls that an unwind may pass through. An ordinary C++
// exception from user code is caught where the code is called (`attempt`) and rethrown by
// the caller after its explicit cleanup. So a holder is passed only by a forced unwind, or
// by a `bad_alloc` from building an error message; either way what it holds leaks, safely.
#pragma once

#include <exception>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

#include "../errors.hpp"
#include "handles.hpp"
#include "python.hpp"

namespace gilonce::detail {

/// How a cell's member reports a failure: the C++ flavour (`get_or_init`) throws, the C API
/// flavour (`get_or_try_init`) sets a Python exception and returns null.
enum class reporting { throws, sets_python_error };

/// Reports a failure of the cell itself (not of its initializer) as `mode` says: throws
/// `Error(message)`, or sets `python_type(message)` and returns null.
template <reporting mode, class Error>
std::nullptr_t fail(PyObject* python_type, const std::string& message) {
    if constexpr (mode == reporting::throws) throw Error(message);
    PyErr_SetString(python_type, message.c_str());
    return nullptr;
}

/// A value in flight, and a holder (see the top): its destructor abandons the value, so a
/// forced unwind leaks it instead of decref'ing without the GIL.
template <class T>
struct held {
    std::optional<T> value;
    held() noexcept = default;
    held(const held&) = delete;
    held& operator=(const held&) = delete;
    ~held() {
        if (value) abandon(*value);
    }
};

/// One run of an initializer: `init()` returns T (C++ flavour) or `std::optional<T>`, with
/// `std::nullopt` and a Python exception for a failure (C API flavour). An ordinary C++
/// exception is kept, to be rethrown after the cell has cleaned up; a forced unwind passes.
template <class T, reporting mode>
class attempt {
public:
    template <class Init>
    GILONCE_FORCED_UNWIND_HANDLER explicit attempt(Init& init) {
        try {
            if constexpr (mode == reporting::throws) made_.value.emplace(init());
            else if (std::optional<T> made = init()) made_.value.emplace(std::move(*made));
#if defined(__GLIBCXX__)
        } catch (abi::__forced_unwind&) {
            throw;  // never swallowed: that aborts the process ("exception not rethrown")
#endif
        } catch (...) {
            error_ = std::current_exception();
        }
    }

    /// Whether there is a value the cell may store: one that is no empty handle and, in the
    /// C API flavour, came with no Python exception set. Requires: the GIL is held.
    bool succeeded() const {
        if (!made_.value || is_empty(*made_.value)) return false;
        return mode == reporting::throws || !PyErr_Occurred();
    }
    /// The value, moved out. Requires: `succeeded()`. Throws what T's move throws (a C++
    /// value's: every handle's move is nothrow), leaving the value here to be destroyed.
    T take() noexcept(std::is_nothrow_move_constructible_v<T>) {
        T out(std::move(*made_.value));
        made_.value.reset();  // a moved-from handle: no C API call
        return out;
    }
    /// Releases the value (a losing one), explicitly. Requires: the GIL is held.
    void release_now() {
        if (made_.value) detail::release_now(*made_.value);
    }

    /// Reports why there is no value to store, for the cell named `who` ("gil_once_cell
    /// 'json.dumps'"): rethrows the initializer's C++ exception in either flavour. Then the
    /// C++ flavour throws `empty_value_error` (a Python exception set meanwhile stays set).
    /// The C API flavour returns null with a Python exception set: for `std::nullopt` or an
    /// empty handle (the result of a failed C-API call), the initializer's own exception, or
    /// a `SystemError` if it set none; for a value with an exception set, a `SystemError`
    /// caused by that exception. Requires: the GIL is held; `!succeeded()`; the cell is no
    /// longer claimed (releasing a value may run Python code that asks for it).
    std::nullptr_t report_failure(const std::string& who) {
        if (error_) {
            const std::exception_ptr error = std::exchange(error_, nullptr);  // this holder: done
            std::rethrow_exception(error);
        }
        if constexpr (mode == reporting::throws) throw empty_value_error(who + ": initializer returned an empty handle");
        if (!made_.value) {  // std::nullopt
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, (who + ": initializer failed without setting an exception").c_str());
            return nullptr;
        }
        if (is_empty(*made_.value)) {  // nothing to release
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_SystemError, (who + ": initializer returned an empty handle without setting an exception").c_str());
            return nullptr;
        }
        detail::release_now(*made_.value);  // half failed: a value, and an exception set
        raise_from_current(PyExc_SystemError, (who + ": initializer returned a value with an exception set").c_str());
        return nullptr;
    }

    attempt(const attempt&) = delete;
    attempt& operator=(const attempt&) = delete;
    /// A holder (see the top): an exception still kept here (only a forced unwind leaves one)
    /// is leaked, since destroying its last reference would run its destructor
    /// (pybind11's error_already_set takes the GIL there).
    ~attempt() {
        if (error_) (void)new (std::nothrow) std::exception_ptr(std::move(error_));
    }

private:
    held<T> made_;
    std::exception_ptr error_;  // the initializer's C++ exception, until report_failure
};

}  // namespace gilonce::detail
