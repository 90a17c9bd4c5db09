// gilonce/gil_token.hpp: a proof, passed by value, that the calling thread holds the GIL.
//
// Every gilonce API that reads or writes shared state relies on the GIL for mutual
// exclusion. Instead of re-checking the GIL on every call (slow) or trusting a comment
// (unchecked), the API takes a `gil_token`: an empty object you can only obtain from an
// RAII `gil_acquire`, or by stating `gil_token::assume_held()`, which debug builds check.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cassert>

#include "gil_state.hpp"

// On a free-threaded build (Py_GIL_DISABLED) there is no GIL; a token there stands for "this
// thread has an attached thread state", which is what every C API call needs. Only the
// pieces that do not use the GIL as a lock accept it there: py_once_lock and lazy_type.
// gil_once_cell.hpp and per_interpreter.hpp stop such a build with an error naming the
// replacement.

namespace gilonce {

/// Proof that the calling thread holds the GIL (on a free-threaded build: has an attached
/// thread state), as a value that costs nothing to pass.
///
/// A token is valid only while the GIL stays held by the thread that made it. Do not
/// store it, send it to another thread, or keep using it after the GIL was released
/// (for example across `Py_BEGIN_ALLOW_THREADS`): C++ cannot enforce this, so it is the
/// caller's contract, checked in debug builds where the token is created.
///
/// Example:
/// @code
///   // Inside a C API function or a pybind11 binding: the GIL is already held.
///   auto gil = gilonce::gil_token::assume_held();
///   const auto& value = cell.get_or_init(gil, make_value);
/// @endcode
class gil_token {
public:
    /// Requires: the calling thread holds the GIL. Unless `NDEBUG` is defined, this is
    /// checked and a violation aborts. The check asks the thread state, not
    /// `PyGILState_Check()`, which answers 1 on every thread once a sub-interpreter has
    /// existed (3.11); it is right with sub-interpreters and after Py_Finalize.
    /// Returns: a token for code that runs before this thread next releases the GIL.
    static gil_token assume_held() noexcept {
        assert(detail::this_thread_holds_the_gil() && "gilonce::gil_token::assume_held: the GIL is not held");
        return gil_token{};
    }

private:
    friend class gil_acquire;
    constexpr gil_token() noexcept = default;
};

/// RAII acquisition of the GIL (`PyGILState_Ensure` / `PyGILState_Release`), and the
/// usual source of a `gil_token`.
///
/// Requires: the interpreter is initialized. The calling thread may or may not hold the
/// GIL already (the acquisition nests). Must be destroyed on the thread that created it,
/// with the GIL held (anything released inside its scope is taken back first).
/// During Py_Finalize (CPython 3.11-3.13), a thread that waits for the GIL is ended with
/// `pthread_exit`, and its stack is unwound without the GIL: this destructor then finds
/// that the thread holds no GIL and leaves the thread state alone, since releasing it would
/// touch an interpreter being destroyed by another thread.
class gil_acquire {
public:
    /// Not `noexcept`: CPython 3.11-3.13 ends a daemon thread with `pthread_exit` right in
    /// `PyGILState_Ensure` once Py_Finalize has started, and that unwind must pass through.
    gil_acquire() : state_(PyGILState_Ensure()) {}
    ~gil_acquire() {
        if (detail::this_thread_holds_the_gil()) PyGILState_Release(state_);
    }
    gil_acquire(const gil_acquire&) = delete;
    gil_acquire& operator=(const gil_acquire&) = delete;

    /// Returns: a token valid while this object lives and the GIL is not released.
    gil_token token() const noexcept { return gil_token{}; }

private:
    PyGILState_STATE state_;
};

}  // namespace gilonce
