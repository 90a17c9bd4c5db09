// Step 03's small form: a complete GIL once cell (check, run, re-check, store) in about twenty
// lines, before the reference header wraps the same algorithm in checks. It is compiled and
// tested in this step (test_minimal_cell.cpp) and raced by the scenario
// minimal_cell_keeps_the_first_stored; what it does NOT handle is said at the class.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(Py_GIL_DISABLED)
#error "step03::minimal_gil_once_cell uses the GIL as its only lock, and this free-threaded \
(Py_GIL_DISABLED) build has none: two threads could both fill the cell (step 07 shows it)."
#endif

namespace step03 {

// --8<-- [start:minimal_gil_once_cell]
/// One strong reference to a Python object, stored at most once, with the GIL as its lock.
///
/// Requires: the caller of every member holds the GIL.
/// `init()` returns a new reference, or null with a Python exception set. It may release
/// the GIL: another thread may then find the cell empty and run its own `init`.
/// Returns: the first object stored (borrowed); every caller gets that one, and a later
/// `init`'s object is released at once. Null: `init` failed, its exception is set, the
/// cell stays empty and the next call tries again.
/// NOT handled (gilonce::gil_once_cell does: README, "From the lesson to the reference"):
/// re-entry (an `init` that asks for its own cell runs again, nested); an `init` that
/// breaks the convention (null without an exception); the end of the object (never
/// released: no destructor, so no Py_DECREF after Py_Finalize, but a cell in module state
/// leaks); values other than one `PyObject*`; sub-interpreters (a `static` cell hands one
/// interpreter's object to all); free-threaded builds (no GIL: step 07).
class minimal_gil_once_cell {
public:
    template <class F>
    PyObject* get_or_init(F&& init) {
        if (value_ != nullptr) return value_;  // 1. check, under the GIL
        PyObject* made = init();               // 2. run: may release the GIL
        if (made == nullptr) return nullptr;   //    failed: still empty
        if (value_ != nullptr) {               // 3. re-check: another thread stored first
            Py_DECREF(made);                   //    the loser's object is released
            return value_;
        }
        value_ = made;                         // 4. store: the first to finish wins
        return value_;
    }

    PyObject* get() const noexcept { return value_; }  // borrowed, or null while empty

private:
    PyObject* value_ = nullptr;  // a strong reference, written once, read and written under the GIL
};
// --8<-- [end:minimal_gil_once_cell]

}  // namespace step03
