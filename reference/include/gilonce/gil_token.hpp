// gilonce/gil_token.hpp: a proof, passed by value, that the calling thread holds the GIL.
//
// Every gilonce API that reads or writes shared state relies on the GIL for mutual
// exclusion. Instead of re-checking the GIL on every call (slow) or trusting a comment
// (unchecked), the API takes a `gil_token`: an empty object you can only obtain from an
// RAII `gil_acquire`, or by stating `gil_token::assume_held()`, which is checked when the
// build defines GILONCE_CHECKS=1 (see compiler.hpp).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "compiler.hpp"
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
/// caller's contract, checked where the token is made when GILONCE_CHECKS=1.
///
/// A token cannot be made by accident: `gil_token{}` and `{}` in place of a token do not
/// compile (its constructor is private and user-provided, so it is not an aggregate, in
/// C++17 too), and neither does asking a temporary `gil_acquire` for one
/// (`gil_acquire{}.token()`, even inside one full-expression: name the `gil_acquire`). What
/// C++ cannot stop is a token copied out of scope on purpose (a function that takes a
/// `const gil_acquire&` and returns its token, `memcpy`): that breaks the contract above.
///
/// Example:
/// @code
///   // Inside a C API function or a pybind11 binding: the GIL is already held.
///   auto gil = gilonce::gil_token::assume_held();
///   const auto& value = cell.get_or_init(gil, make_value);
/// @endcode
class gil_token {
public:
    /// Requires: the calling thread holds the GIL. With GILONCE_CHECKS=1 (whatever NDEBUG
    /// says) this is checked, and a violation aborts with a message; otherwise it costs
    /// nothing and is not checked. The check asks the thread state, not
    /// `PyGILState_Check()`, which answers 1 on every thread once a sub-interpreter has
    /// existed (3.11); it is right with sub-interpreters, before Py_Initialize and after
    /// Py_Finalize.
    /// Returns: a token for code that runs before this thread next releases the GIL.
    static gil_token assume_held() noexcept {
#if GILONCE_CHECKS
        if (!detail::this_thread_holds_the_gil()) {
            std::fputs("gilonce::gil_token::assume_held: the GIL is not held by this thread\n", stderr);
            std::abort();
        }
#endif
        return gil_token{};
    }

private:
    friend class gil_acquire;
    // User-provided (not `= default`): in C++17 a class whose only constructor is a
    // defaulted private one is still an aggregate, and `gil_token{}` would bypass it.
    constexpr gil_token() noexcept {}
};

/// RAII acquisition of the GIL (`PyGILState_Ensure` / `PyGILState_Release`), and the
/// usual source of a `gil_token`.
///
/// Requires: the interpreter is initialized (checked in every build: before Py_Initialize
/// or after Py_Finalize, `PyGILState_Ensure` would crash, so the constructor throws
/// `std::logic_error` saying so). The calling thread may or may not hold the GIL already
/// (the acquisition nests). Must be destroyed on the thread that created it,
/// with the GIL held (anything released inside its scope is taken back first).
/// During Py_Finalize (CPython 3.11-3.13), a thread that waits for the GIL is ended with
/// `pthread_exit`, and its stack is unwound without the GIL: this destructor then finds
/// that the thread holds no GIL and leaves the thread state alone, since releasing it would
/// touch an interpreter being destroyed by another thread.
class gil_acquire {
public:
    /// Not `noexcept`: CPython 3.11-3.13 ends a daemon thread with `pthread_exit` right in
    /// `PyGILState_Ensure` once Py_Finalize has started, and that unwind must pass through.
    /// Throws: `std::logic_error` when no main interpreter exists (not yet initialized, or
    /// finalized). A thread that asks *during* Py_Finalize still meets CPython's own rule.
    gil_acquire() : state_(ensure()) {}
    ~gil_acquire() {
        if (detail::this_thread_holds_the_gil()) PyGILState_Release(state_);
    }
    gil_acquire(const gil_acquire&) = delete;
    gil_acquire& operator=(const gil_acquire&) = delete;

    /// Returns: a token valid while this object lives and the GIL is not released.
    gil_token token() const& noexcept { return gil_token{}; }
    /// Deleted: the token of a temporary would outlive the GIL it proves
    /// (`gil_token t = gil_acquire{}.token();`). Name the `gil_acquire`.
    gil_token token() const&& = delete;

private:
    // The main interpreter exists from Py_Initialize until Py_Finalize has destroyed it;
    // PyInterpreterState_Main() only reads the runtime's pointer, so it is safe to ask first.
    static PyGILState_STATE ensure() {
        if (PyInterpreterState_Main() == nullptr)
            throw std::logic_error(
                "gilonce::gil_acquire: the interpreter is not initialized (before Py_Initialize, or after "
                "Py_Finalize): there is no GIL to acquire");
        return PyGILState_Ensure();
    }

    PyGILState_STATE state_;
};

}  // namespace gilonce
