// gilonce/gil_token.hpp: a proof, passed by value, that the calling thread holds the GIL.
//
// Every gilonce member that reads or writes shared state relies on the GIL (on a
// free-threaded build: an attached thread state) and takes a `gil_token` to say so. A token
// comes from an RAII `gil_acquire`, or from `gil_token::assume_held()`, where the caller
// states that the GIL is held already (inside a C API function or a pybind11 binding).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "detail/python.hpp"

namespace gilonce {

/// Proof that the calling thread holds the GIL (free-threaded: has an attached thread
/// state), as an empty value that costs nothing to pass.
///
/// Invariant: a token exists only where the GIL is held. `gil_token{}` and `{}` in place of
/// a token do not compile (the constructor is private and user-provided, so the class is
/// no aggregate, in C++17 too), nor does the token of a temporary `gil_acquire`.
/// What a caller may NOT do, since C++ cannot stop it: store a token, hand it to another
/// thread, or use it after the GIL was released (`Py_BEGIN_ALLOW_THREADS`).
///
/// Example:
/// @code
///   auto gil = gilonce::gil_token::assume_held();   // in a C API function: the GIL is held
///   const auto& value = cell.get_or_init(gil, make_value);
/// @endcode
class gil_token {
public:
    /// Requires: the calling thread holds the GIL. Checked only when GILONCE_CHECKS=1 (a
    /// violation aborts with a message); otherwise free. The check asks the thread state,
    /// which is right with sub-interpreters and after Py_Finalize.
    static gil_token assume_held() noexcept {
        if constexpr (detail::checks_enabled) {
            if (!detail::this_thread_holds_the_gil()) {
                std::fputs("gilonce::gil_token::assume_held: the GIL is not held by this thread\n", stderr);
                std::abort();
            }
        }
        return gil_token{};
    }

private:
    friend class gil_acquire;
    constexpr gil_token() noexcept {}  // user-provided: `= default` would leave an aggregate
};

/// Holds the GIL for its lifetime (`PyGILState_Ensure` / `PyGILState_Release`); nests.
///
/// Requires: the interpreter is initialized, checked in every build: before Py_Initialize or
/// after Py_Finalize the constructor throws `std::logic_error` instead of crashing. Destroyed
/// on the thread that made it. During Py_Finalize, CPython up to 3.13 ends a daemon thread
/// that wants the GIL with `pthread_exit`, unwinding its stack without the GIL: the
/// constructor lets that unwind pass (it is not `noexcept`), and the destructor, finding
/// the GIL not held, leaves the thread state alone.
class gil_acquire {
public:
    gil_acquire() : state_(ensure()) {}
    ~gil_acquire() {
        if (detail::this_thread_holds_the_gil()) PyGILState_Release(state_);
    }
    gil_acquire(const gil_acquire&) = delete;
    gil_acquire& operator=(const gil_acquire&) = delete;

    /// Returns: a token valid while this object lives and the GIL is not released.
    gil_token token() const& noexcept { return gil_token{}; }
    /// Deleted: the token of a temporary would outlive its GIL. Name the `gil_acquire`.
    gil_token token() const&& = delete;

private:
    // PyInterpreterState_Main() only reads the runtime's pointer: safe to ask first.
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
