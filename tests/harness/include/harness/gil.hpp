// harness/gil.hpp: taking and releasing the GIL at explicit, traced points.
//
// A scenario must release the GIL exactly where the story says it does (an import, a
// call into Python code, `Py_BEGIN_ALLOW_THREADS`), never by luck of the eval loop's
// switch interval. These helpers do that and record it in the trace.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>

#include <utility>

#include "harness/trace.hpp"

namespace harness {

/// The name the trace uses for the GIL.
inline constexpr const char* gil_resource = "GIL";

/// The name of the GIL the calling thread takes and releases: "GIL", or, on a thread
/// running an own-GIL sub-interpreter (3.12+), that interpreter's ("GIL of interpreter 1"),
/// so that a timeline never shows two threads "holding the GIL" at once without saying
/// that they hold different ones. Set by harness::run_in_own_gil_interpreters.
inline thread_local const char* current_gil = gil_resource;

/// Takes the GIL for the lifetime of the object, recording the wait and the hold.
/// Requires: the calling thread does not hold the GIL.
class traced_gil {
public:
    traced_gil() noexcept {
        record(event_kind::waits, current_gil);
        state_ = PyGILState_Ensure();
        record(event_kind::holds, current_gil);
    }
    ~traced_gil() {
        record(event_kind::releases, current_gil);
        PyGILState_Release(state_);
    }
    traced_gil(const traced_gil&) = delete;
    traced_gil& operator=(const traced_gil&) = delete;
    gilonce::gil_token token() const noexcept { return gilonce::gil_token::assume_held(); }

private:
    PyGILState_STATE state_;
};

/// Releases the GIL, runs `fn` without it, and takes the GIL back: the explicit hook point
/// where a scenario's initializer "calls Python code that releases the GIL".
/// Requires: the GIL is held. Returns what `fn` returns.
template <class F>
decltype(auto) without_gil(F&& fn) {
    record(event_kind::releases, current_gil);
    PyThreadState* saved = PyEval_SaveThread();
    struct retake {
        PyThreadState* saved;
        ~retake() {
            record(event_kind::waits, current_gil);
            PyEval_RestoreThread(saved);
            record(event_kind::holds, current_gil);
        }
    } guard{saved};
    return std::forward<F>(fn)();
}

}  // namespace harness
