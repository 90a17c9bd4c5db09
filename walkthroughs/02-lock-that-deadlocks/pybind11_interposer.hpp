// Step 02: what pybind11's gil_safe_call_once_and_store really does, traced from outside.
//
// pybind11's code is not ours to instrument, and a trace written next to the call would
// only say what we expect it to do. Instead the linker routes the calls pybind11 makes
// (PyEval_SaveThread, PyEval_RestoreThread, PyEval_AcquireThread, and the pthread_once
// behind std::call_once) through wrappers (`-Wl,--wrap=...`, set in CMakeLists.txt) that
// record each call as it happens and then make it. Only calls made inside a
// `pybind11_internals_traced` scope are recorded, so the GIL releases of the lesson's own
// build, the harness and other steps are left out (they trace themselves).
#pragma once

namespace step02 {

/// While it lives, on this thread, the wrapped calls are recorded in the trace. Nestable;
/// `pybind11_internals_untraced` turns recording off again inside (for the user's build).
class pybind11_internals_traced {
public:
    pybind11_internals_traced() noexcept;
    ~pybind11_internals_traced();
    pybind11_internals_traced(const pybind11_internals_traced&) = delete;
    pybind11_internals_traced& operator=(const pybind11_internals_traced&) = delete;

private:
    bool was_;
};

/// While it lives, on this thread, the wrapped calls are not recorded.
class pybind11_internals_untraced {
public:
    pybind11_internals_untraced() noexcept;
    ~pybind11_internals_untraced();
    pybind11_internals_untraced(const pybind11_internals_untraced&) = delete;
    pybind11_internals_untraced& operator=(const pybind11_internals_untraced&) = delete;

private:
    bool was_;
};

}  // namespace step02
