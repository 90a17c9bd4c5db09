// gilonce/per_interpreter_census.hpp: optional, a speed-up, paid for with a rule of use.
// While this extension's census counts exactly one interpreter, every `per_interpreter_cell`
// reads that interpreter's value with one load and a branch, without asking which
// interpreter is current. The rule: every interpreter that uses a cell joins first (see
// `join_interpreter`); one that does not may get another's value. A reader who studies
// soundness can skip this header: without it, or before any `join_interpreter`, cells take
// the checked path of per_interpreter.hpp, which has no such rule.
#pragma once

#include <pthread.h>

#include <atomic>
#include <mutex>

#include "per_interpreter.hpp"

GILONCE_PRIVATE_BEGIN
namespace gilonce {

/// Counts the current interpreter in this extension's census, once. While the census counts
/// exactly one interpreter, every `per_interpreter_cell` of this extension reads that one's
/// value from its sole slot. A second interpreter that joins empties every sole slot before
/// this call returns; when it ends, the census counts one again and the slots return. An
/// interpreter is counted until it ends; after `Py_Finalize` + `Py_Initialize` the new one
/// must join again.
///
/// Requires: the GIL is held. Every interpreter that uses a `per_interpreter_cell` of this
/// extension calls it first, from `Py_mod_exec` of a multi-phase module (PEP 489), never
/// from a single-phase `PyInit_*`, which CPython does not re-run for a second interpreter.
/// Violation: an interpreter that reads without having joined, while another is the only one
/// joined, gets that one's value; a build with GILONCE_CHECKS=1 aborts with a message naming
/// the cell instead. Returns: 0, or -1 with a Python exception set (the dict cannot be read
/// or extended, or the interpreter is ending), which `Py_mod_exec` returns as it is.
///
/// Example:
/// @code
///   static int exec_module(PyObject*) {  // the module's Py_mod_exec slot
///       return gilonce::join_interpreter(gilonce::gil_token::assume_held());
///   }
/// @endcode
inline int join_interpreter(gil_token gil) noexcept;

namespace detail {

// Lock order: an interpreter's GIL, then `lock`, never the other way; code holding `lock`
// calls no Python, allocates nothing and waits for nothing.
// Invariant (under `lock`): a cell's `sole` is non-null only if the census counts exactly one
// interpreter, `sole` is that interpreter's value, and the cell is registered. Every change of
// the count first empties every registered `sole`, so an interpreter that joins finds them
// all empty when join_interpreter returns (its threads read after that). An ending
// interpreter leaves the census before its values are released.
struct census_state {
    std::mutex lock;
    int joined = 0;
    interpreter_table* first_joined = nullptr;
    cell_slots* first_registered = nullptr;  // cells whose sole slot the census may set
    std::atomic<int> joined_hint{0};         // `joined`, for a look without `lock`
};
inline census_state census;

// fork() copies only the forking thread: had another thread (an own-GIL interpreter's) held
// `lock` then, the child's would stay locked. The forking thread takes it around fork().
inline void census_before_fork() noexcept { census.lock.lock(); }
inline void census_after_fork() noexcept { census.lock.unlock(); }

// Requires: `lock`. From now on the census empties and sets this cell's sole slot.
inline void register_slots(cell_slots& slots) noexcept {
    if (slots.registered.load(std::memory_order_relaxed)) return;
    slots.next_registered = std::exchange(census.first_registered, &slots);
    slots.registered.store(true, std::memory_order_relaxed);
}

// Requires: `lock`; `interp` is the only interpreter counted, and `value` its value.
inline void set_sole(cell_slots& slots, PyInterpreterState* interp, const void* value) noexcept {
    slots.sole_owner.store(interp, std::memory_order_relaxed);  // before the value: the check reads it after
    slots.sole.store(value, std::memory_order_release);
}

// Requires: `lock`; the count just changed. Empties every sole slot; if one interpreter is
// left, gives it back the values it keeps in a fast slot (its table outlives its count).
inline void census_changed() noexcept {
    census.joined_hint.store(census.joined, std::memory_order_relaxed);
    for (cell_slots* s = census.first_registered; s != nullptr; s = s->next_registered)
        s->sole.store(nullptr, std::memory_order_relaxed);
    if (census.joined != 1) return;
    PyInterpreterState* sole = census.first_joined->interp;
    for (cell_slots* s = census.first_registered; s != nullptr; s = s->next_registered) {
        const fast_record* record = s->fast.load(std::memory_order_acquire);
        if (record != nullptr && record->owner == sole) set_sole(*s, sole, record->value);
    }
}

// The hooks: a value filled in `interp`, and a table destroyed as its interpreter ends.
inline void census_value_remembered(cell_slots& slots, PyInterpreterState* interp, const void* value) noexcept {
    const int joined = census.joined_hint.load(std::memory_order_relaxed);  // a hint: decided under the lock
    if (joined != 1 && (joined == 0 || slots.registered.load(std::memory_order_relaxed))) return;
    std::lock_guard<std::mutex> held(census.lock);
    register_slots(slots);
    if (census.joined == 1 && census.first_joined->interp == interp) set_sole(slots, interp, value);
}
inline void census_interpreter_ending(interpreter_table& table) noexcept {
    std::lock_guard<std::mutex> held(census.lock);
    if (!table.joined) return;
    interpreter_table** link = &census.first_joined;
    while (*link != &table) link = &(*link)->next_joined;
    *link = table.next_joined;
    table.joined = false;
    --census.joined;
    census_changed();
}
inline constexpr census_hooks census_hooks_of_this_header{census_value_remembered, census_interpreter_ending};

// Requires: the GIL of `table`'s interpreter (its entries are read).
inline void census_join(interpreter_table& table) noexcept {
    // Once, and before `lock`: fork() runs the handlers (which take `lock`) holding glibc's
    // own atfork lock, which pthread_atfork takes too. A failure only leaves fork unguarded.
    static const bool fork_guarded = pthread_atfork(census_before_fork, census_after_fork, census_after_fork) == 0;
    (void)fork_guarded;
    std::lock_guard<std::mutex> held(census.lock);
    installed_census.store(&census_hooks_of_this_header, std::memory_order_release);
    if (table.joined) return;  // a second module object of the same interpreter
    table.joined = true;
    table.next_joined = std::exchange(census.first_joined, &table);
    ++census.joined;
    for (auto& entry : table.entries) register_slots(*entry.second->slots);  // filled before it joined
    census_changed();
}

/// For tests: how many interpreters the census counts now.
inline int joined_interpreters() noexcept {
    std::lock_guard<std::mutex> held(census.lock);
    return census.joined;
}

template <class T>
const T* sole_value(const per_interpreter_cell<T>& cell) noexcept {
    return static_cast<const T*>(cell.slots_.sole.load(std::memory_order_acquire));
}

}  // namespace detail

inline int join_interpreter(gil_token) noexcept {
    bool ended = false;
    detail::interpreter_table* table = detail::this_interpreters_table(detail::table_lookup::find_or_create, ended);
    if (ended) PyErr_SetString(PyExc_RuntimeError, "gilonce::join_interpreter: this interpreter is ending");
    if (table == nullptr) return -1;
    detail::census_join(*table);
    return 0;
}

}  // namespace gilonce
GILONCE_PRIVATE_END
