// gilonce/per_interpreter.hpp: a lazily computed value per interpreter, for state that must
// stay a C++ static. A `static gil_once_cell` is one cell for the whole process: filled in a
// sub-interpreter, it hands that interpreter's object to every other one (and after the
// sub-interpreter ends, a dangling one); filled before Py_Finalize, it hands the dead
// interpreter's object to the re-initialized one; with own-GIL interpreters (3.12+), two
// GILs guard it and both may write. Prefer module state (PEP 630) where you can put the cell
// there; this is for the statics you cannot move.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "gil_once_cell.hpp"
#include "gil_token.hpp"
#include "init_context.hpp"

namespace gilonce {

namespace detail {
/// Internal: one per_interpreter_cell's value in one interpreter.
template <class T>
struct gil_once_cell_entry;
}  // namespace detail

/// A value computed lazily once per interpreter, behind the `gil_once_cell` API.
///
/// Each interpreter has its own `gil_once_cell<T>`, kept in that interpreter's own dict
/// (`PyInterpreterState_GetDict`), so each is guarded by that interpreter's GIL and has the
/// cell's whole contract (initializers may race and the first value stored wins; re-entry
/// is an error naming the cell). When the interpreter ends (`Py_EndInterpreter`,
/// `Py_Finalize`), its values are released with its GIL held, and a later interpreter,
/// even one at the same address after re-initialization, computes its own.
///
/// The fast path: the first interpreter to fill the value keeps a pointer to it in the
/// object itself; a read from that interpreter is one call (`PyInterpreterState_Get`), two
/// loads, a compare and a branch. Other interpreters find theirs in their dict.
///
/// Requires: static storage duration (a namespace-scope or function-local `static`): the
/// interpreters' dicts keep pointers to this object until they are finalized. It is
/// constant-initialized and trivially destructible, so it has no order-of-destruction issue.
/// Not for module state: there, put a plain `gil_once_cell` in the state.
///
/// Example:
/// @code
///   static gilonce::per_interpreter_cell<gilonce::py_ref> json_dumps{"json.dumps"};
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
    /// yet (or on an error reading the interpreter's dict, with a Python exception set).
    const T* get(gil_token gil) {
        if (const T* value = fast()) return value;
        detail::gil_once_cell_entry<T>* entry = find(gil, false);
        return entry != nullptr ? remember(entry->cell.get(gil)) : nullptr;
    }

    /// As `gil_once_cell::get_or_init`, for this interpreter's value. Also throws
    /// `std::runtime_error` if the interpreter's dict cannot be read or extended (memory).
    template <class F>
    const T& get_or_init(gil_token gil, F&& init) {
        if (const T* value = fast()) return *value;
        detail::gil_once_cell_entry<T>* entry = find(gil, true);
        if (entry == nullptr) throw_dict_failure();
        return *remember(&entry->cell.get_or_init(gil, std::forward<F>(init)));
    }

    /// As `gil_once_cell::get_or_try_init`, for this interpreter's value: null with a
    /// Python exception set on failure.
    template <class F>
    const T* get_or_try_init(gil_token gil, F&& init) {
        if (const T* value = fast()) return value;
        detail::gil_once_cell_entry<T>* entry = find(gil, true);
        return entry != nullptr ? remember(entry->cell.get_or_try_init(gil, std::forward<F>(init))) : nullptr;
    }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    friend struct detail::gil_once_cell_entry<T>;
    // The fast slot's contents: which interpreter, and where its value is. Published once
    // complete (release), never freed: a reader in another interpreter may still be
    // comparing `owner` when the slot is emptied. One record per interpreter that filled
    // the slot first: a few bytes per re-initialization.
    struct record {
        PyInterpreterState* owner;
        const T* value;
    };

    const T* fast() const noexcept {
        const record* r = fast_.load(std::memory_order_acquire);
        // GILONCE_FAST_PATH_INTERPRETER_CHECK: the value is this interpreter's only if it filled it.
        return r != nullptr && r->owner == PyInterpreterState_Get() ? r->value : nullptr;
    }
    // Requires: the GIL is held. Offers this interpreter's value to the fast slot.
    const T* remember(const T* value) {
        if (value == nullptr) return nullptr;
        const record* empty = nullptr;
        if (fast_.load(std::memory_order_relaxed) == nullptr) {
            auto* r = new (std::nothrow) record{PyInterpreterState_Get(), value};
            if (r != nullptr && !fast_.compare_exchange_strong(empty, r, std::memory_order_acq_rel)) delete r;
        }
        return value;
    }
    // Called while `interp` is finalized (its dict is cleared), before its values go.
    void forget(PyInterpreterState* interp) noexcept {
        const record* r = fast_.load(std::memory_order_acquire);
        if (r != nullptr && r->owner == interp) fast_.compare_exchange_strong(r, nullptr, std::memory_order_acq_rel);
    }
    detail::gil_once_cell_entry<T>* find(gil_token, bool create);
    [[noreturn]] void throw_dict_failure() const;

    const char* name_;
    std::atomic<const record*> fast_{nullptr};
};

namespace detail {

// ---- the per-interpreter table: one capsule in each interpreter's dict ----------------------

/// Internal: one per_interpreter_cell's value in one interpreter (type-erased in the table).
struct interpreter_entry {
    virtual ~interpreter_entry() = default;
    /// The interpreter is being finalized: the cell's fast slot must stop pointing here.
    virtual void forget(PyInterpreterState* interp) noexcept = 0;
};

/// Internal: one per_interpreter_cell's value in one interpreter, in a cell of its own.
template <class T>
struct gil_once_cell_entry final : interpreter_entry {
    /// An empty entry for `owner_cell`, named as it is.
    gil_once_cell_entry(per_interpreter_cell<T>* owner_cell, const char* name) : owner(owner_cell), cell(name) {}
    void forget(PyInterpreterState* interp) noexcept override { owner->forget(interp); }
    per_interpreter_cell<T>* owner;  ///< the static this entry belongs to
    gil_once_cell<T> cell;           ///< this interpreter's value, guarded by its GIL
};

/// Internal: all entries of one interpreter, for the per_interpreter_cells of this copy of
/// the header.
struct interpreter_table {
    PyInterpreterState* interp;  ///< the interpreter whose dict holds this table
    std::unordered_map<const void*, std::unique_ptr<interpreter_entry>> entries;  ///< by owning cell
};

// The capsule's destructor: the interpreter's dict is being cleared (it is ending), with its
// GIL held. Fast slots first, then the values (their release may run Python code).
inline void destroy_interpreter_table(PyObject* capsule) {
    auto* table = static_cast<interpreter_table*>(PyCapsule_GetPointer(capsule, "gilonce.per_interpreter"));
    if (table == nullptr) {
        PyErr_Clear();
        return;
    }
    for (auto& entry : table->entries) entry.second->forget(table->interp);
    delete table;  // each gil_once_cell releases its value: this thread holds the GIL
}

/// This interpreter's table (created if `create`), or null with a Python exception set.
/// The key names this copy of the header (its computation counter's address): copies in
/// different extension modules keep separate tables of their own layout.
inline interpreter_table* this_interpreters_table(bool create) {
    PyInterpreterState* interp = PyInterpreterState_Get();
    PyObject* dict = PyInterpreterState_GetDict(interp);
    if (dict == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "gilonce: this interpreter has no per-interpreter dict");
        return nullptr;
    }
    PyObject* key = PyUnicode_FromFormat("gilonce.per_interpreter/1/%p", reinterpret_cast<void*>(computation_tag()));
    if (key == nullptr) return nullptr;
    PyObject* capsule = PyDict_GetItemWithError(dict, key);  // borrowed
    if (capsule == nullptr && !PyErr_Occurred() && create) {
        auto* table = new (std::nothrow) interpreter_table{interp, {}};
        PyObject* fresh = table ? PyCapsule_New(table, "gilonce.per_interpreter", destroy_interpreter_table) : nullptr;
        if (fresh == nullptr) {
            delete table;
            if (!PyErr_Occurred()) PyErr_NoMemory();
        } else {
            capsule = PyDict_SetItem(dict, key, fresh) == 0 ? fresh : nullptr;
            Py_DECREF(fresh);  // the dict keeps it (or, on failure, it is destroyed, empty)
        }
    }
    Py_DECREF(key);
    if (capsule == nullptr) return nullptr;
    return static_cast<interpreter_table*>(PyCapsule_GetPointer(capsule, "gilonce.per_interpreter"));
}

}  // namespace detail

template <class T>
detail::gil_once_cell_entry<T>* per_interpreter_cell<T>::find(gil_token, bool create) {
    detail::interpreter_table* table = detail::this_interpreters_table(create);
    if (table == nullptr) return nullptr;
    auto found = table->entries.find(this);
    if (found != table->entries.end()) return static_cast<detail::gil_once_cell_entry<T>*>(found->second.get());
    if (!create) return nullptr;
    try {
        auto entry = std::make_unique<detail::gil_once_cell_entry<T>>(this, name_);
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
    PyErr_Clear();
    throw std::runtime_error(std::string("per_interpreter_cell '") + name_ +
                             "': cannot read or extend this interpreter's dict");
}

}  // namespace gilonce
