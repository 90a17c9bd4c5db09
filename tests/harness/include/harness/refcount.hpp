// harness/refcount.hpp: leaks counted, not guessed, where the interpreter counts references.
//
// A debug interpreter (Py_REF_DEBUG: Debian's python3.11d, the pydebug preset) keeps a total
// of every reference taken and dropped, read by sys.gettotalrefcount(). Code that leaks
// leaves the total above its baseline once the garbage is collected; `batch_deltas` measures
// that the way CPython's `regrtest -R` does. A release interpreter keeps no total: a check
// must then say that it did not run (`refs_not_counted`), never pass. Every file in the
// process must see the debug pyconfig.h (CMakeLists.txt sees to it): a decref compiled
// without Py_REF_DEBUG does not reach the total, and the count drifts.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>

#include <functional>
#include <vector>

namespace harness {

/// What a check prints when this interpreter keeps no total. The refcount tests' ctest
/// entries match it (SKIP_REGULAR_EXPRESSION), so ctest shows them as skipped, not passed.
inline constexpr const char* refs_not_counted =
    "references not counted: this interpreter has no sys.gettotalrefcount (a release build); "
    "the pydebug preset runs this check against python3.11d";

/// Whether this interpreter keeps a total reference count. Requires: the GIL is held.
bool refs_counted(gilonce::gil_token gil);

/// Collects garbage until a collection finds none, then returns the total reference count.
/// Types are always in reference cycles (a type is in its own `__mro__`): without the
/// collection, a type dropped in a round would look leaked.
/// Requires: the GIL is held and `refs_counted()`. Throws std::runtime_error if reading fails.
Py_ssize_t settled_total_refs(gilonce::gil_token gil);

/// How many type objects named `name` (tp_name, "step03.Color") the collector knows of, after
/// a collection: whether a type a scenario dropped was freed (a type is in a cycle with
/// itself, so only the collector frees it). Works on every interpreter. Requires: the GIL is
/// held. Returns: the count, or -1 with a Python exception set.
long live_types_named(gilonce::gil_token gil, const char* name);

/// How `batch_deltas` repeats a round (regrtest -R's "warmups:runs", with runs in batches).
struct batch_plan {
    /// Rounds run first and not measured: they create what lives on for good. Measured: the
    /// first computation creates gilonce's ContextVar in the interpreter's dict (6
    /// references) and, on a thread that has none, its contextvars.Context (2), which lives
    /// as long as the thread state. After them, every batch of a sound round has been 0.
    int warmups = 2;
    int batches = 4;  ///< measured batches: one delta each
    int rounds = 5;   ///< rounds per batch: a leak of k references per round shows as k * rounds
};

/// Runs `round` plan.warmups times, then plan.batches batches of plan.rounds times, and
/// returns each batch's change in `settled_total_refs()`. A sound round gives only zeros.
/// Requires: the GIL is held and `refs_counted()`. `round` runs with the GIL held (it may
/// release it, and start threads), and must leave no exception set.
std::vector<Py_ssize_t> batch_deltas(gilonce::gil_token gil, const std::function<void(gilonce::gil_token)>& round,
                                     batch_plan plan = {});

/// Slots for a heap type (with Py_TPFLAGS_HAVE_GC) whose plain instances the collector can
/// free together with the type. A type whose class attributes are its own instances is a
/// cycle (type -> dict -> instance -> type) that only the collector frees, and only when the
/// instances are tracked and visit their type: without that, such a type is never freed.
extern PyType_Slot collectable_slots[];

}  // namespace harness
