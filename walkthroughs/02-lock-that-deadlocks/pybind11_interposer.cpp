// Step 02: the wrappers behind pybind11_interposer.hpp. Each records the call it is about to
// make (or has made), then makes the real one (`__real_...`, supplied by the linker).
#include "pybind11_interposer.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>

#include "harness/gil.hpp"
#include "harness/trace.hpp"
#include "locked_lazy_types.hpp"

extern "C" {
PyThreadState* __real_PyEval_SaveThread(void);
void __real_PyEval_RestoreThread(PyThreadState*);
void __real_PyEval_AcquireThread(PyThreadState*);
int __real_pthread_once(pthread_once_t*, void (*)(void));
}

namespace step02 {
namespace {

thread_local bool tracing = false;
thread_local void (*once_routine)(void) = nullptr;  // the routine pthread_once was given
thread_local bool once_routine_ran = false;

using harness::event_kind;

// Runs in place of the routine std::call_once hands to pthread_once: the thread that runs
// it holds the once-flag for exactly that long.
void traced_once_routine() {
    void (*routine)(void) = once_routine;
    once_routine_ran = true;
    harness::record(event_kind::holds, pybind11_once_flag);
    struct on_exit {  // also when the routine throws (a failed build): the flag is let go
        ~on_exit() { harness::record(event_kind::releases, pybind11_once_flag); }
    } releases;
    routine();
}

}  // namespace

pybind11_internals_traced::pybind11_internals_traced() noexcept : was_(tracing) { tracing = true; }
pybind11_internals_traced::~pybind11_internals_traced() { tracing = was_; }
pybind11_internals_untraced::pybind11_internals_untraced() noexcept : was_(tracing) { tracing = false; }
pybind11_internals_untraced::~pybind11_internals_untraced() { tracing = was_; }

}  // namespace step02

using step02::tracing;

extern "C" PyThreadState* __wrap_PyEval_SaveThread(void) {
    if (tracing) harness::record(harness::event_kind::releases, harness::gil_resource, "PyEval_SaveThread");
    return __real_PyEval_SaveThread();
}

extern "C" void __wrap_PyEval_RestoreThread(PyThreadState* state) {
    if (!tracing) return __real_PyEval_RestoreThread(state);
    harness::record(harness::event_kind::waits, harness::gil_resource, "PyEval_RestoreThread");
    __real_PyEval_RestoreThread(state);
    harness::record(harness::event_kind::holds, harness::gil_resource, "PyEval_RestoreThread");
}

extern "C" void __wrap_PyEval_AcquireThread(PyThreadState* state) {
    if (!tracing) return __real_PyEval_AcquireThread(state);
    harness::record(harness::event_kind::waits, harness::gil_resource, "PyEval_AcquireThread");
    __real_PyEval_AcquireThread(state);
    harness::record(harness::event_kind::holds, harness::gil_resource, "PyEval_AcquireThread");
}

extern "C" int __wrap_pthread_once(pthread_once_t* once, void (*routine)(void)) {
    if (!tracing) return __real_pthread_once(once, routine);
    harness::record(harness::event_kind::waits, step02::pybind11_once_flag, "pthread_once (std::call_once)");
    struct saved_state {  // a nested pthread_once (another flag) must not clobber ours
        void (*routine)(void) = step02::once_routine;
        bool ran = step02::once_routine_ran;
        ~saved_state() {
            step02::once_routine = routine;
            step02::once_routine_ran = ran;
        }
    } saved;
    step02::once_routine = routine;
    step02::once_routine_ran = false;
    const int result = __real_pthread_once(once, step02::traced_once_routine);
    if (!step02::once_routine_ran) harness::record(harness::event_kind::passes, step02::pybind11_once_flag);
    return result;
}
