// gilonce/per_interpreter.hpp: a lazily computed value per interpreter, for state that must
// stay a C++ static. A `static gil_once_cell` is one cell for the whole process: filled in a
// sub-interpreter, it hands that interpreter's object to every other one (and a dangling
// one once it ends); filled before Py_Finalize, it hands the dead interpreter's object to
// the re-initialized one; with own-GIL interpreters (3.12+), two GILs guard it and both may
// write. Prefer module state (PEP 630) where the cell can live there; this is for the
// statics that cannot move. The optional gilonce/per_interpreter_census.hpp makes reads one
// load and a branch while only one interpreter uses the extension.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#if defined(Py_GIL_DISABLED)
#error "gilonce::per_interpreter_cell keeps a gil_once_cell per interpreter, guarded by that \
interpreter's GIL, and this free-threaded (Py_GIL_DISABLED) build has none. Not available \
there yet: keep the value in module state in a gilonce::py_once_lock (gilonce/py_once_lock.hpp)."
#endif

#include "gil_once_cell.hpp"
#include "gil_token.hpp"

// Everything below is private to the extension that compiles it, whatever its visibility
// flags and however it is loaded: the tables are this extension's own, and so is every
// function that reads them (a module loaded with RTLD_GLOBAL lends its functions to others).
GILONCE_PRIVATE_BEGIN
namespace gilonce {
namespace detail {

/// The first interpreter to fill a cell's value, and where that value is. Published once
/// complete, never freed: a reader elsewhere may still compare `owner` when it is replaced.
struct fast_record {
    PyInterpreterState* owner;
    const void* value;                            // a `const T*`, into that interpreter's table
    mutable const fast_record* next_retired = nullptr;  // once cleared from its cell: see `retire`
};

/// Records cleared from their cells, one per cell and ending interpreter that filled it:
/// kept, and kept reachable (a leak checker sees them held, not lost).
inline std::atomic<const fast_record*> retired_records{nullptr};
inline void retire(const fast_record* record) noexcept {
    record->next_retired = retired_records.load(std::memory_order_relaxed);
    while (!retired_records.compare_exchange_weak(record->next_retired, record, std::memory_order_release)) {
    }
}

struct interpreter_table;

/// A cell's shortcuts to a value, independent of T.
struct cell_slots {
    std::atomic<const fast_record*> fast{nullptr};  ///< checked against the current interpreter
    /// Kept by the census (per_interpreter_census.hpp): the value of the one interpreter it
    /// counts, read without asking which interpreter is current; null otherwise.
    std::atomic<const void*> sole{nullptr};
    std::atomic<PyInterpreterState*> sole_owner{nullptr};  ///< whose `sole` is (GILONCE_CHECKS)
    std::atomic<bool> registered{false};                   ///< in the census's registry
    cell_slots* next_registered = nullptr;                 ///< the registry's link
};

/// What the census does at the two moments it cares about; installed by its first join.
struct census_hooks {
    void (*value_remembered)(cell_slots&, PyInterpreterState*, const void* value) noexcept;
    void (*interpreter_ending)(interpreter_table&) noexcept;
};
inline std::atomic<const census_hooks*> installed_census{nullptr};

/// One cell's value in one interpreter (type-erased in the table).
struct interpreter_entry {
    explicit interpreter_entry(cell_slots* owner_slots) noexcept : slots(owner_slots) {}
    virtual ~interpreter_entry() = default;
    cell_slots* slots;
};
template <class T>
struct gil_once_cell_entry final : interpreter_entry {
    gil_once_cell_entry(cell_slots* owner_slots, const char* name) : interpreter_entry(owner_slots), cell(name) {}
    gil_once_cell<T> cell;  // this interpreter's value, guarded by its GIL
};

/// This extension's entries in one interpreter: a capsule in its dict, destroyed with it.
struct interpreter_table {
    PyInterpreterState* interp;
    PyObject* dict;  // borrowed: it owns the table's capsule
    std::unordered_map<const void*, std::unique_ptr<interpreter_entry>> entries;  // by owning cell
    bool joined = false;                       // counted by the census
    interpreter_table* next_joined = nullptr;  // the census's list
};

/// Requires: the GIL is held; `value` is the current interpreter's. Offers it to the slots.
inline void remember(cell_slots& slots, const void* value) noexcept {
    PyInterpreterState* interp = PyInterpreterState_Get();
    const fast_record* none = nullptr;
    if (slots.fast.load(std::memory_order_relaxed) == nullptr) {
        auto* record = new (std::nothrow) fast_record{interp, value};
        if (record != nullptr && !slots.fast.compare_exchange_strong(none, record, std::memory_order_acq_rel)) delete record;
    }
    if (const census_hooks* census = installed_census.load(std::memory_order_acquire))
        census->value_remembered(slots, interp, value);
}

[[noreturn]] inline void sole_value_misused(const char* name) noexcept {
    std::fprintf(stderr,
                 "gilonce::per_interpreter_cell '%s': read from an interpreter that did not call "
                 "gilonce::join_interpreter while another interpreter is the only one joined: it would get "
                 "that interpreter's value (every interpreter that uses the cell must join first, from "
                 "Py_mod_exec)\n",
                 name);
    std::abort();
}

// This extension's key in an interpreter's dict, from a private variable's address: the
// tables of two extensions never mix. A new reference, or null (exception set).
inline PyObject* table_key() {
    return PyUnicode_FromFormat("gilonce.per_interpreter/1/%p", static_cast<void*>(&installed_census));
}

// CPython ends an interpreter by detaching its dict, then releasing the entries; a
// PyInterpreterState_GetDict after that makes a new dict that nothing ever clears. A table
// made there would never be released, and its fast records would hand its values to the next
// interpreter at the same address. So when this table goes with its dict detached, the new
// dict gets None under this extension's key, and reads there are refused.
inline void mark_interpreter_ended(const interpreter_table& table) noexcept {
    set_aside_exception pending;  // a dealloc may run while an exception is set
    PyObject* dict = PyInterpreterState_GetDict(table.interp);  // if detached: a new one
    PyObject* key = dict != nullptr && dict != table.dict ? table_key() : nullptr;
    if (key != nullptr) (void)PyDict_SetItem(dict, key, Py_None);
    Py_XDECREF(key);
    PyErr_Clear();  // out of memory: left unmarked, no more
    pending.put_back();
}

// The capsule's destructor, as the interpreter's dict is cleared (with its GIL): the census
// and the fast slots first, then the mark, then the values, whose release may run Python code
// that reads a cell (and finds the mark).
inline void destroy_interpreter_table(PyObject* capsule) {
    auto* table = static_cast<interpreter_table*>(PyCapsule_GetPointer(capsule, "gilonce.per_interpreter"));
    if (table == nullptr) return PyErr_Clear();
    if (const census_hooks* census = installed_census.load(std::memory_order_acquire)) census->interpreter_ending(*table);
    for (auto& entry : table->entries) {
        const fast_record* record = entry.second->slots->fast.load(std::memory_order_acquire);
        if (record != nullptr && record->owner == table->interp &&
            entry.second->slots->fast.compare_exchange_strong(record, nullptr, std::memory_order_acq_rel))
            retire(record);
    }
    mark_interpreter_ended(*table);
    delete table;  // each cell releases its value: this thread holds the GIL
}

/// Whether to make this interpreter's table if it has none.
enum class table_lookup { find, find_or_create };

/// This interpreter's table, or null: with a Python exception set, or with `ended` set (and
/// no exception) once the interpreter is ending and this extension's table is gone.
inline interpreter_table* this_interpreters_table(table_lookup lookup, bool& ended) {
    PyInterpreterState* interp = PyInterpreterState_Get();
    PyObject* dict = PyInterpreterState_GetDict(interp);
    PyObject* key = dict != nullptr ? table_key() : nullptr;
    if (key == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "gilonce: this interpreter has no per-interpreter dict");
        return nullptr;
    }
    PyObject* capsule = PyDict_GetItemWithError(dict, key);  // borrowed
    ended = capsule == Py_None;
    if (capsule == nullptr && !PyErr_Occurred() && lookup == table_lookup::find_or_create) {
        auto table = std::unique_ptr<interpreter_table>(new (std::nothrow) interpreter_table{interp, dict, {}});
        PyObject* fresh = table ? PyCapsule_New(table.get(), "gilonce.per_interpreter", nullptr) : nullptr;
        if (fresh != nullptr && PyDict_SetItem(dict, key, fresh) == 0) {
            PyCapsule_SetDestructor(fresh, destroy_interpreter_table);  // only a capsule the dict holds
            capsule = fresh;
            (void)table.release();  // the capsule owns it now
        } else if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        Py_XDECREF(fresh);  // the dict keeps it; one it refused has no destructor and goes now
    }
    Py_DECREF(key);
    if (capsule == nullptr || ended) return nullptr;
    return static_cast<interpreter_table*>(PyCapsule_GetPointer(capsule, "gilonce.per_interpreter"));
}

}  // namespace detail

template <class T>
class per_interpreter_cell;
namespace detail {
/// For tests: what `cell`'s sole slot holds (defined in per_interpreter_census.hpp).
template <class T>
const T* sole_value(const per_interpreter_cell<T>& cell) noexcept;
}  // namespace detail

/// A value computed lazily once per interpreter, behind the `gil_once_cell` API.
///
/// Invariant: each interpreter's value lives in its own `gil_once_cell`, in a table kept in
/// that interpreter's dict (`PyInterpreterState_GetDict`), guarded by that interpreter's GIL
/// and released with it; a shortcut to a value is taken only after checking that it is the
/// current interpreter's (or, with the census, that the current interpreter is the only one).
///
/// Contract:
/// - Each interpreter has the cell's whole contract (initializers may race, the first value
///   stored wins, re-entry is an error naming the cell). When it ends (`Py_EndInterpreter`,
///   `Py_Finalize`), its values are released with its GIL held, and a later interpreter,
///   even one at the same address, computes its own. Nothing is shared with another
///   extension built from these headers.
/// - While an interpreter ends, CPython detaches its dict, then releases the entries. From
///   the moment this extension's values are released, a read computes and stores nothing:
///   `get` returns null (no exception), `get_or_try_init` null with a `RuntimeError` naming
///   the cell, `get_or_init` throws `std::runtime_error` naming it. A read earlier in the
///   end (another entry's dealloc) does not find the detached values and computes a new one,
///   released with the others: a deallocator may not assume it reads the interpreter's old
///   value. A read during the end in an interpreter that had used no cell of this extension
///   is not told from a new interpreter's first read; `join_interpreter` at import avoids it.
/// - Fast path: one call (`PyInterpreterState_Get`), two loads, a compare and a branch, for
///   the first interpreter to fill the value; other interpreters find theirs in their dict.
///   With the census and one interpreter joined: one load and a branch.
/// - Requires: static storage duration (interpreters' dicts keep pointers to it until the
///   process ends). Constant-initialized and trivially destructible. Not for module state:
///   put a plain `gil_once_cell` there.
///
/// Example:
/// @code
///   static gilonce::per_interpreter_cell<gilonce::py_ref> json_dumps{"json.dumps"};
///   // Anywhere the module's code runs:
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

    /// Requires: the GIL is held. Returns: this interpreter's value; or null if it has none
    /// yet, is ending, or its dict cannot be read (then with a Python exception set).
    const T* get(gil_token gil) {
        if (const T* value = fast()) return value;
        detail::gil_once_cell_entry<T>* entry = find(detail::table_lookup::find);
        return entry != nullptr ? remember(entry->cell.get(gil)) : nullptr;
    }

    /// As `gil_once_cell::get_or_init`, for this interpreter's value. Also throws
    /// `std::runtime_error` if the dict cannot be read or extended, or the interpreter is
    /// ending.
    template <class F>
    const T& get_or_init(gil_token gil, F&& init) {
        if (const T* value = fast()) return *value;
        return *initialize<detail::reporting::throws>(gil, init);
    }

    /// As `gil_once_cell::get_or_try_init`, for this interpreter's value (a `RuntimeError`
    /// naming the cell if the interpreter is ending).
    template <class F>
    const T* get_or_try_init(gil_token gil, F&& init) {
        if (const T* value = fast()) return value;
        return initialize<detail::reporting::sets_python_error>(gil, init);
    }

private:
    friend const T* detail::sole_value<T>(const per_interpreter_cell<T>& cell) noexcept;

    const T* fast() const noexcept {
        if (const void* sole = slots_.sole.load(std::memory_order_acquire)) {  // the census's shortcut
            if constexpr (detail::checks_enabled) {
                if (slots_.sole_owner.load(std::memory_order_relaxed) != PyInterpreterState_Get())
                    detail::sole_value_misused(name_);
            }
            return static_cast<const T*>(sole);
        }
        const detail::fast_record* record = slots_.fast.load(std::memory_order_acquire);
        return record != nullptr && record->owner == PyInterpreterState_Get() ? static_cast<const T*>(record->value)
                                                                              : nullptr;
    }
    // The one slow path: this interpreter's own cell, found (or made) in its table.
    template <detail::reporting mode, class F>
    GILONCE_COLD const T* initialize(gil_token gil, F& init) {
        detail::gil_once_cell_entry<T>* entry = find(detail::table_lookup::find_or_create);
        if (entry == nullptr) return dict_failure<mode>();
        if constexpr (mode == detail::reporting::throws) return remember(&entry->cell.get_or_init(gil, init));
        else return remember(entry->cell.get_or_try_init(gil, init));
    }
    const T* remember(const T* value) noexcept {
        if (value != nullptr) detail::remember(slots_, value);
        return value;
    }
    // This cell's entry in this interpreter's table; null with a Python exception set, or
    // (`find`) with none when there is no entry.
    detail::gil_once_cell_entry<T>* find(detail::table_lookup lookup) {
        bool ended = false;
        detail::interpreter_table* table = detail::this_interpreters_table(lookup, ended);
        if (ended && lookup == detail::table_lookup::find_or_create) PyErr_SetString(PyExc_RuntimeError, ending_text().c_str());
        if (table == nullptr) return nullptr;
        auto found = table->entries.find(this);
        if (found != table->entries.end()) return static_cast<detail::gil_once_cell_entry<T>*>(found->second.get());
        if (lookup == detail::table_lookup::find) return nullptr;
        try {
            auto entry = std::make_unique<detail::gil_once_cell_entry<T>>(&slots_, name_);
            auto* made = entry.get();
            table->entries.emplace(this, std::move(entry));
            return made;
        } catch (const std::bad_alloc&) {
            PyErr_NoMemory();
            return nullptr;
        }
    }
    std::string ending_text() const {
        return std::string("per_interpreter_cell '") + name_ +
               "': this interpreter is ending (its values are released): no value is computed now";
    }
    // `find` failed, its Python exception set: the C++ flavour throws instead.
    template <detail::reporting mode>
    std::nullptr_t dict_failure() const {
        if constexpr (mode == detail::reporting::sets_python_error) return nullptr;
        const bool ending = PyErr_ExceptionMatches(PyExc_RuntimeError);  // find's only RuntimeError
        PyErr_Clear();
        throw std::runtime_error(ending ? ending_text()
                                        : std::string("per_interpreter_cell '") + name_ + "': cannot read or extend this interpreter's dict");
    }

    const char* name_;
    detail::cell_slots slots_;
};

}  // namespace gilonce
GILONCE_PRIVATE_END
