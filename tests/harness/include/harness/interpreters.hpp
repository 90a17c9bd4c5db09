// harness/interpreters.hpp: sub-interpreters for scenarios -- a legacy one on the calling
// thread (every version: it shares the main interpreter's GIL), and threads that each run
// an own-GIL sub-interpreter (CPython 3.12+, PEP 684), so a scenario can show two GILs
// guarding one C++ static, or several interpreters running Python code at the same moment.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <functional>
#include <string>
#include <vector>

#include "harness/threads.hpp"

namespace harness {

/// Whether this build's CPython has own-GIL sub-interpreters (3.12+).
inline constexpr bool has_own_gil_interpreters = PY_VERSION_HEX >= 0x030C0000;

/// Why a scenario that needs own-GIL sub-interpreters cannot run on this build, or "" if it can.
const char* own_gil_unavailable() noexcept;

/// This interpreter's id (0 for the main interpreter). Requires: the GIL is held.
long long current_interpreter_id();

/// A legacy sub-interpreter (`Py_NewInterpreter`: it shares the main GIL), current on the
/// calling thread from construction until `end()`; then the thread's previous thread state
/// is current again. Requires: the GIL is held at construction and at `end()`.
/// Throws std::runtime_error if CPython cannot make it.
class sub_interpreter {
public:
    sub_interpreter();
    ~sub_interpreter();  // ends it if `end()` was not called
    sub_interpreter(const sub_interpreter&) = delete;
    sub_interpreter& operator=(const sub_interpreter&) = delete;
    long long id() const noexcept { return id_; }
    /// The thread state that was current before (to switch back while this one lives).
    PyThreadState* previous() const noexcept { return previous_; }
    /// Ends the interpreter (its modules are cleared, its dict is released).
    void end();

private:
    PyThreadState* previous_;
    PyThreadState* sub_;
    long long id_;
};

/// Starts one thread per entry; each creates its own-GIL sub-interpreter, in the order of
/// the entries (so the first gets the lowest id)
/// (`Py_NewInterpreterFromConfig`, isolated: its own GIL and object allocator, only
/// multi-phase extension modules), runs the body holding that interpreter's GIL (traced
/// as "GIL of interpreter N"), ends the interpreter, and exits. Joins them all, then
/// rethrows the first exception a body threw, prefixed with the thread's name.
/// Requires: CPython 3.12+ (else throws std::logic_error saying so); the interpreter is
/// initialized; the caller may hold the main GIL (it is released while the threads run).
void run_in_own_gil_interpreters(const std::vector<scenario_thread>& threads);

}  // namespace harness
