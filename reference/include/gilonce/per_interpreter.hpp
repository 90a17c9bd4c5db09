// gilonce/per_interpreter.hpp: a lazily computed value per interpreter, for state that must
// stay a C++ static. A `static gil_once_cell` is one cell for the whole process: filled in a
// sub-interpreter, it hands that interpreter's object to every other one (and after the
// sub-interpreter ends, a dangling one); filled before Py_Finalize, it hands the dead
// interpreter's object to the re-initialized one; with own-GIL interpreters (3.12+), two
// GILs guard it and both may write. Prefer module state (PEP 630) where you can put the cell
// there; this is for the statics you cannot move. An extension that calls
// `join_interpreter` from its module's exec slot lets the cells skip the interpreter lookup
// while only one interpreter uses it: then a read is one load and a branch.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>

#if defined(Py_GIL_DISABLED)
#error "gilonce::per_interpreter_cell keeps a gil_once_cell per interpreter, guarded by that \
interpreter's GIL, and this free-threaded (Py_GIL_DISABLED) build has none. Not available \
there yet: keep the value in module state in a gilonce::py_once_lock (gilonce/py_once_lock.hpp)."
#endif

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "compiler.hpp"
#include "gil_once_cell.hpp"
#include "gil_token.hpp"
#include "init_context.hpp"

// Everything below is private to the extension that compiles it, whatever its visibility
// flags and however it is loaded (compiler.hpp says why): the census and the tables are
// this extension's own, and so is every function that reads them.
GILONCE_PRIVATE_BEGIN
namespace gilonce {

namespace detail {
/// Internal: one per_interpreter_cell's value in one interpreter.
template <class T>
struct gil_once_cell_entry;

/// Internal: the fast slot's contents: which interpreter, and where its value is.
/// Published once complete (release), never freed: a reader in another interpreter may
/// still be comparing `owner` when the slot is emptied. One record per interpreter that
/// filled the slot first: a few bytes per re-initialization.
struct fast_record {
    PyInterpreterState* owner;  ///< the interpreter whose value this is
    const void* value;          ///< a `const T*`, into that interpreter's table
};

/// Internal: a per_interpreter_cell's two shortcuts to a value, independent of T so that
/// the census (below) can clear them.
struct cell_slots {
    /// The value of the one interpreter the census counts, set only while it counts
    /// exactly one and that one filled the value; read without asking which interpreter
    /// is current. Written under the census lock; read anywhere (acquire).
    std::atomic<const void*> sole{nullptr};
    /// Whose value `sole` is (written before it, never cleared): for GILONCE_CHECKS only.
    std::atomic<PyInterpreterState*> sole_owner{nullptr};
    /// The first interpreter to fill the value, checked against the current one.
    std::atomic<const fast_record*> fast{nullptr};
    /// In the census's registry (set once, under the census lock; read early without it).
    std::atomic<bool> registered{false};
    cell_slots* next_registered = nullptr;  ///< the registry's link, under the census lock

    /// Requires: the GIL is held, and `value` is the current interpreter's value. Offers it
    /// to the fast slot, and to `sole` if the census counts only this interpreter.
    void remember(const void* value);
    /// Called while `interp` is finalized (its dict is cleared), before its values go.
    void forget(PyInterpreterState* interp) noexcept;
};

struct interpreter_table;

/// Internal: aborts, naming the cell and the broken contract (GILONCE_CHECKS: a read from
/// the sole path is the sole interpreter's).
[[noreturn]] inline void sole_value_misused(const char* name) noexcept;
}  // namespace detail

template <class T>
class per_interpreter_cell;

namespace detail {
/// Internal, for tests: what `cell`'s sole slot holds (null while it reads another way).
template <class T>
const T* sole_value(const per_interpreter_cell<T>& cell) noexcept;
/// Internal, for tests: how many interpreters the census counts now.
inline int joined_interpreters() noexcept;
}  // namespace detail

/// Counts the current interpreter in this extension's census of interpreters, once: while
/// the census counts exactly one interpreter, every `per_interpreter_cell` of this copy of
/// the header reads that interpreter's value with one load and a branch, without asking
/// which interpreter is current. A second interpreter that joins turns that shortcut off
/// for every cell before this call returns (the cells then check the interpreter, as
/// without a census); when it ends, the census counts one again and the shortcut returns.
/// An interpreter is counted until it ends (`Py_EndInterpreter`, `Py_Finalize`), however
/// many module objects it makes; after `Py_Finalize` + `Py_Initialize` the new interpreter
/// must join again, and computes its own values.
///
/// Requires: the GIL is held. Every interpreter that uses a `per_interpreter_cell` of this
/// extension has called `join_interpreter` first, from `Py_mod_exec` of a multi-phase
/// module (PEP 489); never from a single-phase `PyInit_*`, which CPython does not re-run
/// for a second interpreter. An extension that never calls it keeps the checked reads.
/// Violation: an interpreter that reads a cell without having joined, while another one is
/// the only one joined, gets that interpreter's value. A build that defines GILONCE_CHECKS=1
/// checks every such read (a compare on the fast path) and aborts with a message naming the
/// cell; by default it is not checked.
/// The census is this extension's own: another extension built from these headers, joined
/// or not, has its own census, tables and cells, whatever either's symbol visibility.
/// Returns: 0; or -1 with a Python exception set (this interpreter's dict cannot be read
/// or extended, or the interpreter is ending), which `Py_mod_exec` returns as it is.
///
/// Example:
/// @code
///   static int exec_module(PyObject*) {  // the module's Py_mod_exec slot
///       return gilonce::join_interpreter(gilonce::gil_token::assume_held());
///   }
/// @endcode
inline int join_interpreter(gil_token gil) noexcept;

/// A value computed lazily once per interpreter, behind the `gil_once_cell` API.
///
/// Each interpreter has its own `gil_once_cell<T>`, kept in that interpreter's own dict
/// (`PyInterpreterState_GetDict`), so each is guarded by that interpreter's GIL and has the
/// cell's whole contract (initializers may race and the first value stored wins; re-entry
/// is an error naming the cell). When the interpreter ends (`Py_EndInterpreter`,
/// `Py_Finalize`), its values are released with its GIL held, and a later interpreter,
/// even one at the same address after re-initialization, computes its own. Nothing is shared
/// with another extension module built from these headers: each has its own values.
///
/// While the interpreter ends: CPython detaches its dict, then releases the entries (a
/// dealloc that runs then may read a cell). From the moment this extension's values are
/// released, and after, a read computes and stores nothing: `get` returns null (no
/// exception), `get_or_try_init` null with a `RuntimeError` naming the cell, `get_or_init`
/// throws `std::runtime_error` naming it; a deallocator should use the first two. A read
/// earlier in the end (another entry's dealloc, before this extension's values go) does not
/// find this interpreter's values, since CPython has detached the dict that holds them: it
/// computes a new value, which is released with the others. So a deallocator may not assume
/// that the value it reads is the one the interpreter had. One case is not told apart from a new interpreter's first
/// read: a read during the end in an interpreter that had used no cell of this extension
/// before. An extension whose deallocators read cells calls `join_interpreter`, which
/// makes this extension's table in every interpreter at import.
///
/// The fast path, in three tiers:
/// - while `join_interpreter` counts exactly one interpreter (the usual process: one
///   interpreter, whose module joined), one load and a branch, as a plain `gil_once_cell`;
/// - otherwise, from the first interpreter to fill the value: one call
///   (`PyInterpreterState_Get`), two loads, a compare and a branch;
/// - other interpreters find theirs in their dict.
///
/// Requires: static storage duration (a namespace-scope or function-local `static`): the
/// interpreters' dicts and the census keep pointers to this object until the process ends.
/// It is constant-initialized and trivially destructible, so it has no order-of-destruction
/// issue. Not for module state: there, put a plain `gil_once_cell` in the state. If the
/// extension calls `join_interpreter`, every interpreter that uses the cell must have
/// joined (see there; checked in debug builds).
///
/// Example:
/// @code
///   static gilonce::per_interpreter_cell<gilonce::py_ref> json_dumps{"json.dumps"};
///   static int exec_module(PyObject*) {  // Py_mod_exec: optional, for the one-load reads
///       return gilonce::join_interpreter(gilonce::gil_token::assume_held());
///   }
///   // Then, anywhere the module's code runs:
///   auto gil = gilonce::gil_token::assume_held();
///   const gilonce::py_ref* f = json_dumps.get_or_try_init(gil, [] { ... });
/// @endcode
template <class T>
class per_interpreter_cell {
public:
    /// An empty cell for every interpreter. `name` (a string literal) names it in errors.
    constexpr explicit per_interpreter_cell(const char* name = "gilonce::per_interpreter_cell") noexcept
        : name_(name != nullptr ? name : "gilonce::per_interpreter_cell") {}
    per_interpreter_cell(const per_interpreter_cell&) = delete;
    per_interpreter_cell& operator=(const per_interpreter_cell&) = delete;

    /// Requires: the GIL is held. Returns: this interpreter's value, or null if it has none
    /// yet or is ending (or on an error reading the interpreter's dict, with a Python
    /// exception set).
    const T* get(gil_token gil) {
        if (const T* value = fast()) return value;
        return get_slow(gil);
    }

    /// As `gil_once_cell::get_or_init`, for this interpreter's value. Also throws
    /// `std::runtime_error` if the interpreter's dict cannot be read or extended (memory),
    /// or if the interpreter is ending (its values released: see the class comment).
    template <class F>
    const T& get_or_init(gil_token gil, F&& init) {
        if (const T* value = fast()) return *value;
        return get_or_init_slow(gil, std::forward<F>(init));
    }

    /// As `gil_once_cell::get_or_try_init`, for this interpreter's value: null with a
    /// Python exception set on failure (a `RuntimeError` naming the cell if the interpreter
    /// is ending).
    template <class F>
    const T* get_or_try_init(gil_token gil, F&& init) {
        if (const T* value = fast()) return value;
        return get_or_try_init_slow(gil, std::forward<F>(init));
    }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    friend const T* detail::sole_value<T>(const per_interpreter_cell<T>& cell) noexcept;

    const T* fast() const noexcept {
        // GILONCE_FAST_PATH_SOLE: only one interpreter joined, and this is its value.
        if (const void* sole = slots_.sole.load(std::memory_order_acquire)) {
#if GILONCE_CHECKS
            if (slots_.sole_owner.load(std::memory_order_relaxed) != PyInterpreterState_Get())
                detail::sole_value_misused(name_);
#endif
            return static_cast<const T*>(sole);
        }
        const detail::fast_record* r = slots_.fast.load(std::memory_order_acquire);
        // GILONCE_FAST_PATH_INTERPRETER_CHECK: the value is this interpreter's only if it filled it.
        return r != nullptr && r->owner == PyInterpreterState_Get() ? static_cast<const T*>(r->value) : nullptr;
    }
    // The slow paths: this interpreter's own cell, in its table; out of line, so that the
    // inlined fast path stays short.
    GILONCE_COLD const T* get_slow(gil_token gil) {
        detail::gil_once_cell_entry<T>* entry = find(gil, false);
        return entry != nullptr ? remember(entry->cell.get(gil)) : nullptr;
    }
    template <class F>
    GILONCE_COLD const T& get_or_init_slow(gil_token gil, F&& init) {
        detail::gil_once_cell_entry<T>* entry = find(gil, true);
        if (entry == nullptr) throw_dict_failure();
        return *remember(&entry->cell.get_or_init(gil, std::forward<F>(init)));
    }
    template <class F>
    GILONCE_COLD const T* get_or_try_init_slow(gil_token gil, F&& init) {
        detail::gil_once_cell_entry<T>* entry = find(gil, true);
        return entry != nullptr ? remember(entry->cell.get_or_try_init(gil, std::forward<F>(init))) : nullptr;
    }
    // Requires: the GIL is held. Offers this interpreter's value to the fast slots.
    const T* remember(const T* value) {
        if (value != nullptr) slots_.remember(value);
        return value;
    }
    detail::gil_once_cell_entry<T>* find(gil_token, bool create);
    [[noreturn]] void throw_dict_failure() const;

    const char* name_;
    detail::cell_slots slots_;
};

namespace detail {

// ---- the per-interpreter table: one capsule in each interpreter's dict ----------------------

/// Internal: one per_interpreter_cell's value in one interpreter (type-erased in the table).
struct interpreter_entry {
    /// An entry for the cell whose shortcuts are `owner_slots`.
    explicit interpreter_entry(cell_slots* owner_slots) noexcept : slots(owner_slots) {}
    virtual ~interpreter_entry() = default;
    cell_slots* slots;  ///< the shortcuts of the static this entry belongs to
};

/// Internal: one per_interpreter_cell's value in one interpreter, in a cell of its own.
template <class T>
struct gil_once_cell_entry final : interpreter_entry {
    /// An empty entry for the cell whose shortcuts are `owner_slots`, named as it is.
    gil_once_cell_entry(cell_slots* owner_slots, const char* name) : interpreter_entry(owner_slots), cell(name) {}
    gil_once_cell<T> cell;  ///< this interpreter's value, guarded by its GIL
};

/// Internal: all entries of one interpreter, for the per_interpreter_cells of this copy of
/// the header.
struct interpreter_table {
    PyInterpreterState* interp;  ///< the interpreter whose dict holds this table
    PyObject* dict;              ///< that dict (borrowed: it owns the table's capsule)
    std::unordered_map<const void*, std::unique_ptr<interpreter_entry>> entries;  ///< by owning cell
    bool joined = false;                      ///< counted by the census (under its lock)
    interpreter_table* next_joined = nullptr;  ///< the census's list (under its lock)
};

// ---- the census: which interpreters joined, and the cells whose sole slot it may set ------
//
// Lock order: an interpreter's GIL, then `lock`; never the other way. `lock` is taken with
// the GIL held (join_interpreter, a slow-path read, an interpreter's table being destroyed),
// and code holding it calls no Python, allocates nothing and waits for nothing: a thread
// that waits for it waits for a few stores, and no thread waits for a GIL while holding it.
// An ending interpreter leaves the census (its `sole` values emptied) before its values are
// released, and its table is destroyed only after that, so a `sole` value is always alive.
//
// Invariant (under `lock`): a cell's `sole` is non-null only if the census counts exactly one
// interpreter, `sole` is that interpreter's value, and the cell is in the registry. Every
// change of the count first empties every registered `sole`, so an interpreter that joins
// finds them all empty when join_interpreter returns: its threads read after that (they
// run its module), and read-after-write coherence gives them the empty slot or a later
// value, which only a count of one (itself alone) can store.
/// Internal: the census of this copy of the header (lock order and invariant above).
struct census_state {
    std::mutex lock;                           ///< taken after a GIL, never before one
    int joined = 0;                            ///< interpreters counted
    interpreter_table* first_joined = nullptr;  ///< their tables
    cell_slots* first_registered = nullptr;     ///< cells whose shortcuts the census may set
    std::atomic<int> joined_hint{0};           ///< `joined`, for a look without `lock`
    bool fork_handlers_installed = false;      ///< under `lock`
};
/// One census per copy of the header (per extension module), as the tables are: hidden, as
/// everything in this header is (see the top).
inline census_state census;

// fork() copies only the forking thread: had another thread (an own-GIL interpreter's) held
// `lock` at that moment, the child's `lock` would stay locked for ever. So the forking thread
// takes it around fork(), as it takes its GIL; the holder lets go after a few stores.
inline void census_before_fork() noexcept { census.lock.lock(); }
inline void census_after_fork() noexcept { census.lock.unlock(); }  // parent and child
// Requires: `census.lock`. Installs the handlers once; a failure only leaves fork unguarded.
inline void install_census_fork_handlers() noexcept {
    if (census.fork_handlers_installed) return;
    census.fork_handlers_installed =
        pthread_atfork(census_before_fork, census_after_fork, census_after_fork) == 0;
}

// Requires: `census.lock`. The cell's slots will be emptied and set at every count change.
inline void register_slots(cell_slots& slots) noexcept {
    if (slots.registered.load(std::memory_order_relaxed)) return;
    slots.next_registered = census.first_registered;
    census.first_registered = &slots;
    slots.registered.store(true, std::memory_order_relaxed);
}

// Requires: `census.lock`. `sole` may hold `value` from now: `interp` is the only one counted.
inline void set_sole(cell_slots& slots, PyInterpreterState* interp, const void* value) noexcept {
    slots.sole_owner.store(interp, std::memory_order_relaxed);  // before the value: the check reads it after
    slots.sole.store(value, std::memory_order_release);  // the value was built before (its GIL or fast_'s acquire)
}

// Requires: `census.lock`; the count just changed. Empties every sole slot; if one
// interpreter is left, gives it back the values it already keeps in a fast slot. Those
// stay valid: its table is destroyed only after it leaves the census, under this lock.
inline void census_changed() noexcept {
    census.joined_hint.store(census.joined, std::memory_order_relaxed);
    for (cell_slots* s = census.first_registered; s != nullptr; s = s->next_registered)
        s->sole.store(nullptr, std::memory_order_relaxed);  // publishes nothing: see the invariant
    if (census.joined != 1) return;
    PyInterpreterState* sole = census.first_joined->interp;
    for (cell_slots* s = census.first_registered; s != nullptr; s = s->next_registered) {
        const fast_record* r = s->fast.load(std::memory_order_acquire);
        if (r != nullptr && r->owner == sole) set_sole(*s, sole, r->value);
    }
}

// Requires: the GIL of `table`'s interpreter is held (its entries are read).
inline void census_join(interpreter_table& table) noexcept {
    std::lock_guard<std::mutex> held(census.lock);
    install_census_fork_handlers();
    if (table.joined) return;  // a second module object of the same interpreter
    table.joined = true;
    table.next_joined = census.first_joined;
    census.first_joined = &table;
    ++census.joined;
    for (auto& entry : table.entries) register_slots(*entry.second->slots);  // filled before it joined
    census_changed();
}

// The table's interpreter is ending; its values are released after this returns.
inline void census_leave(interpreter_table& table) noexcept {
    std::lock_guard<std::mutex> held(census.lock);
    if (!table.joined) return;
    interpreter_table** link = &census.first_joined;
    while (*link != &table) link = &(*link)->next_joined;
    *link = table.next_joined;
    table.joined = false;
    --census.joined;
    census_changed();
}

inline void cell_slots::remember(const void* value) {
    PyInterpreterState* interp = PyInterpreterState_Get();
    const fast_record* empty = nullptr;
    if (fast.load(std::memory_order_relaxed) == nullptr) {
        auto* r = new (std::nothrow) fast_record{interp, value};
        if (r != nullptr && !fast.compare_exchange_strong(empty, r, std::memory_order_acq_rel)) delete r;
    }
    // Without a census (no join_interpreter call) this is all: the census lock is not taken.
    const int joined = census.joined_hint.load(std::memory_order_relaxed);  // a hint: decided under the lock
    if (joined != 1 && (joined == 0 || registered.load(std::memory_order_relaxed))) return;
    std::lock_guard<std::mutex> held(census.lock);
    register_slots(*this);
    if (census.joined == 1 && census.first_joined->interp == interp) set_sole(*this, interp, value);
}

inline void cell_slots::forget(PyInterpreterState* interp) noexcept {
    const fast_record* r = fast.load(std::memory_order_acquire);
    if (r != nullptr && r->owner == interp) fast.compare_exchange_strong(r, nullptr, std::memory_order_acq_rel);
}

inline int joined_interpreters() noexcept {
    std::lock_guard<std::mutex> held(census.lock);
    return census.joined;
}

template <class T>
const T* sole_value(const per_interpreter_cell<T>& cell) noexcept {
    return static_cast<const T*>(cell.slots_.sole.load(std::memory_order_acquire));
}

inline void sole_value_misused(const char* name) noexcept {
    std::fprintf(stderr,
                 "gilonce::per_interpreter_cell '%s': read from an interpreter that did not call "
                 "gilonce::join_interpreter while another interpreter is the only one joined: it would get "
                 "that interpreter's value (every interpreter that uses the cell must join first, from "
                 "Py_mod_exec)\n",
                 name);
    std::abort();
}

// This copy's key in an interpreter's dict. It names this copy of the header (its census's
// address, private to the extension): copies in different extension modules keep separate
// tables of their own layout. A new reference, or null (exception set).
inline PyObject* table_key() {
    return PyUnicode_FromFormat("gilonce.per_interpreter/1/%p", static_cast<void*>(&census));
}

// CPython ends an interpreter by detaching its dict (interp->dict = NULL) and then releasing
// the entries; PyInterpreterState_GetDict called after that makes a new dict, which nothing
// ever clears. A table made there would never be released and its fast records would hand
// its values to the next interpreter at the same address. So when this copy's table goes
// with a detached dict, the new dict gets None under this copy's key: reads there are refused
// instead, and a table a dealloc made there earlier in the end (replaced now) is released
// like this one. (A table whose entry was deleted from a dict still attached, which only a
// test does, leaves no mark: the next read starts afresh.)
inline void mark_interpreter_ended(const interpreter_table& table) noexcept {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);  // a dealloc may run while an exception is set
    PyObject* dict = PyInterpreterState_GetDict(table.interp);  // if detached: a new one
    PyObject* key = dict != nullptr && dict != table.dict ? table_key() : nullptr;
    if (key != nullptr) (void)PyDict_SetItem(dict, key, Py_None);
    Py_XDECREF(key);
    PyErr_Clear();  // out of memory: left unmarked, no more
    PyErr_Restore(type, value, tb);
}

// The capsule's destructor: the interpreter's dict is being cleared (it is ending), with its
// GIL held. The census and the fast slots first, then the mark, then the values (their
// release may run Python code, which may read a cell: it finds the mark).
inline void destroy_interpreter_table(PyObject* capsule) {
    auto* table = static_cast<interpreter_table*>(PyCapsule_GetPointer(capsule, "gilonce.per_interpreter"));
    if (table == nullptr) {
        PyErr_Clear();
        return;
    }
    census_leave(*table);
    for (auto& entry : table->entries) entry.second->slots->forget(table->interp);
    mark_interpreter_ended(*table);
    delete table;  // each gil_once_cell releases its value: this thread holds the GIL
}

/// This interpreter's table (created if `create`), or null: with a Python exception set, or
/// with `ended` set and no exception if the interpreter is ending and this copy's table is
/// gone (see mark_interpreter_ended).
inline interpreter_table* this_interpreters_table(bool create, bool& ended) {
    PyInterpreterState* interp = PyInterpreterState_Get();
    PyObject* dict = PyInterpreterState_GetDict(interp);
    if (dict == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "gilonce: this interpreter has no per-interpreter dict");
        return nullptr;
    }
    PyObject* key = table_key();
    if (key == nullptr) return nullptr;
    PyObject* capsule = PyDict_GetItemWithError(dict, key);  // borrowed
    ended = capsule == Py_None;
    if (capsule == nullptr && !PyErr_Occurred() && create) {
        auto* table = new (std::nothrow) interpreter_table{interp, dict, {}};
        PyObject* fresh = table ? PyCapsule_New(table, "gilonce.per_interpreter", nullptr) : nullptr;
        if (fresh != nullptr && PyDict_SetItem(dict, key, fresh) == 0) {
            // Only a capsule in the dict may destroy its table: that marks the interpreter ended.
            PyCapsule_SetDestructor(fresh, destroy_interpreter_table);
            capsule = fresh;
        } else {
            delete table;
            if (!PyErr_Occurred()) PyErr_NoMemory();
        }
        Py_XDECREF(fresh);  // the dict keeps it; one it refused has no destructor and goes now
    }
    Py_DECREF(key);
    if (capsule == nullptr || ended) return nullptr;
    return static_cast<interpreter_table*>(PyCapsule_GetPointer(capsule, "gilonce.per_interpreter"));
}

}  // namespace detail

inline int join_interpreter(gil_token) noexcept {
    bool ended = false;
    detail::interpreter_table* table = detail::this_interpreters_table(true, ended);
    if (ended) PyErr_SetString(PyExc_RuntimeError, "gilonce::join_interpreter: this interpreter is ending");
    if (table == nullptr) return -1;
    detail::census_join(*table);
    return 0;
}

template <class T>
detail::gil_once_cell_entry<T>* per_interpreter_cell<T>::find(gil_token, bool create) {
    bool ended = false;
    detail::interpreter_table* table = detail::this_interpreters_table(create, ended);
    if (ended && create) {
        PyErr_Format(PyExc_RuntimeError,
                     "per_interpreter_cell '%s': this interpreter is ending (its values are released): "
                     "no value is computed now", name_);
    }
    if (table == nullptr) return nullptr;
    auto found = table->entries.find(this);
    if (found != table->entries.end()) return static_cast<detail::gil_once_cell_entry<T>*>(found->second.get());
    if (!create) return nullptr;
    try {
        auto entry = std::make_unique<detail::gil_once_cell_entry<T>>(&slots_, name_);
        auto* raw = entry.get();
        table->entries.emplace(this, std::move(entry));
        return raw;
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return nullptr;
    }
}

template <class T>
void per_interpreter_cell<T>::throw_dict_failure() const {
    const bool ending = PyErr_ExceptionMatches(PyExc_RuntimeError);  // set by find
    PyErr_Clear();
    throw std::runtime_error(std::string("per_interpreter_cell '") + name_ +
                             (ending ? "': this interpreter is ending (its values are released): no value is computed now"
                                     : "': cannot read or extend this interpreter's dict"));
}

}  // namespace gilonce
GILONCE_PRIVATE_END
