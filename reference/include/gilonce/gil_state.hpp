// gilonce/gil_state.hpp: "does this thread hold the GIL?", answered correctly.
//
// `PyGILState_Check()` is the obvious question to ask and gives the wrong answer in two
// situations a real extension meets: once a sub-interpreter has existed (3.11) it returns 1
// on every thread, and after Py_Finalize it must not be called at all. gilonce asks the
// thread state instead, which is right in both.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

namespace gilonce {
namespace detail {

/// True if the calling thread holds the GIL of a live interpreter: it has an attached
/// thread state (3.12+: thread-local; 3.11: the one global "current" thread state, which
/// must then be this thread's). False after Py_Finalize (no current thread state), on a
/// thread that released the GIL, and on a thread ended by `pthread_exit` in finalization.
/// Safe to call at any time, with or without the GIL, before or after Py_Finalize.
/// Reads: one thread-state pointer and, if set, its `thread_id` (a live thread's).
/// Limits: a thread state created on one thread and attached on another keeps its
/// creator's `thread_id`, so there the answer is a false "no" (a debug token check aborts;
/// a destructor leaks instead of releasing): attach thread states on the thread that made
/// them, as PyGILState_Ensure does. And on 3.11, where the current state is one global, a
/// thread that reads it while the finalizing thread frees it (only a daemon thread being
/// torn down during Py_Finalize, in a destructor of its own) races with that free.
inline bool this_thread_holds_the_gil() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState* current = PyThreadState_GetUnchecked();
#else
    PyThreadState* current = _PyThreadState_UncheckedGet();
#endif
    // 3.11: the current thread state is the GIL holder's, whichever thread that is; two
    // live threads never share an id, so matching ours means the holder is this thread.
    return current != nullptr && current->thread_id == PyThread_get_thread_ident();
}

}  // namespace detail
}  // namespace gilonce
