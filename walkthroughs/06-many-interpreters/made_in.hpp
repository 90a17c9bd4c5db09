// Step 06's witness: which interpreter made an object, recorded by the code that made it.
// A scenario compares addresses with this record and never dereferences an object after
// its interpreter may be gone, so "main got an object of an ended interpreter" is a value
// seen, not a crash hoped for.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <optional>
#include <string>

namespace step06 {

/// Where and when an object was made.
struct maker {
    long long interpreter;  ///< PyInterpreterState_GetID of the interpreter that made it
    int generation;         ///< 1 until the first Py_Finalize + Py_Initialize, then 2, ...
};

/// The current generation of the process's interpreters (see `maker`).
int generation() noexcept;
/// Called by a scenario after Py_Initialize has made a new main interpreter.
void next_generation() noexcept;

/// Records that `object` was made now, by the current interpreter. Requires: a GIL is held.
void record_maker(const void* object);
/// Who made `object`, if recorded. Safe at any time: only the address is used.
std::optional<maker> maker_of(const void* object);
/// "interpreter 1, generation 1", or "an object nobody recorded".
std::string describe_maker(const void* object);

}  // namespace step06
