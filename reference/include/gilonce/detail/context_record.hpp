// gilonce/detail/context_record.hpp: which lazy values the current execution context is
// computing, so that re-entry ("this initializer asked for the value it is computing") is
// told apart from a second, independent caller.
//
// A thread-local record cannot tell them apart: greenlets run many call stacks on one thread,
// and switching to another greenlet that asks for the same value is not recursion; a
// `std::thread::id` is reused by glibc, and after fork() a new thread may inherit one. So the
// record lives in a `contextvars.ContextVar`: each thread and each greenlet has its own
// context. A context can be *copied* (asyncio's call_soon, create_task, to_thread), and a copy
// may outlive the computation it was made in.
//
// Invariant: a context is inside a computation of value V exactly when its record holds an
// entry that V's `live_computations` still holds. An entry is a fresh Python object, compared
// by identity: the live list keeps a reference to it, and so does every record that holds
// it, so no other object can take its address while either might present it. A computation
// leaves the live list when it ends, so an entry left in a copied context means nothing from
// then on. A leaked entry (a thread torn down inside the computation) keeps that thread's
// context, and the copies made of it inside the computation, "inside" for good.
// Nothing here is private to one copy of these headers: two extensions built from them
// share the record, and each recognizes only the entries of its own live lists.
#pragma once

#include <mutex>
#include <new>
#include <utility>

#include "python.hpp"

namespace gilonce::detail {

#if defined(Py_GIL_DISABLED)
using live_list_lock = std::mutex;  // held for a few pointer operations, never around Python code
#else
struct live_list_lock {  // the GIL is the lock
    void lock() noexcept {}
    void unlock() noexcept {}
};
#endif

/// The computations of one lazy value in progress; owned by the value, constant-initialized.
/// Each is a heap node owning its entry, so that one a torn-down thread abandons stays
/// linked and valid, and its entry's address is never reused.
class live_computations {
public:
    struct node {
        PyObject* entry;  // a strong reference
        node* next;
    };
    constexpr live_computations() noexcept = default;
    live_computations(const live_computations&) = delete;
    live_computations& operator=(const live_computations&) = delete;
    ~live_computations() {  // only abandoned computations are left: their entries leak
        while (head_ != nullptr) delete std::exchange(head_, head_->next);
    }
    /// A new live computation, named by a new entry (a new reference, or null with an
    /// exception set: the call fails); null when there is none. Requires: the GIL is held.
    node* begin(PyObject* entry) noexcept {
        node* fresh = entry != nullptr ? new (std::nothrow) node{entry, nullptr} : nullptr;
        if (fresh == nullptr) {
            Py_XDECREF(entry);  // a bytes object: no Python code runs
            return nullptr;
        }
        std::lock_guard<live_list_lock> held(lock_);
        fresh->next = std::exchange(head_, fresh);
        return fresh;
    }
    /// Ends `computation`, releasing its entry. Requires: the GIL is held.
    void end(node* computation) noexcept {
        {
            std::lock_guard<live_list_lock> held(lock_);
            node** link = &head_;
            while (*link != computation) link = &(*link)->next;  // it is linked until here
            *link = computation->next;
        }
        Py_DECREF(computation->entry);  // records may still hold it: nothing else can match
        delete computation;
    }
    /// Whether `record` (a context's record) holds an entry of this list.
    bool named_in(PyObject* record) const noexcept {
        const Py_ssize_t n = PyTuple_Check(record) ? PyTuple_GET_SIZE(record) : 0;
        std::lock_guard<live_list_lock> held(lock_);
        for (Py_ssize_t i = 0; i < n; ++i)
            if (holds(PyTuple_GET_ITEM(record, i))) return true;  // by identity: anything else never matches
        return false;
    }

private:
    bool holds(const PyObject* entry) const noexcept {  // Requires: lock_
        for (const node* n = head_; n != nullptr; n = n->next)
            if (n->entry == entry) return true;
        return false;
    }
    mutable live_list_lock lock_;
    node* head_ = nullptr;
};

/// The interpreter's ContextVar of records (a tuple of entries, innermost last), shared by
/// every copy of these headers in the process: the key names the format. Requires: the GIL
/// is held. Returns: a borrowed reference, or null with an exception set.
inline PyObject* record_variable() {
    const char* const key = "gilonce.computing/5";  // a literal: no symbol to share
    PyObject* dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (dict == nullptr) {
        PyErr_SetString(PyExc_SystemError, "gilonce: this interpreter has no per-interpreter dict");
        return nullptr;
    }
    if (PyObject* var = PyDict_GetItemString(dict, key)) return var;  // borrowed
    PyObject* fresh = PyContextVar_New(key, nullptr);
    PyObject* name = fresh != nullptr ? PyUnicode_FromString(key) : nullptr;
    PyObject* var = name != nullptr ? PyDict_SetDefault(dict, name, fresh) : nullptr;  // another copy may win
    Py_XDECREF(name);
    Py_XDECREF(fresh);
    return var;  // the dict keeps it alive
}

/// A fresh entry: a new object that no cache hands out twice (a `bytes` of several bytes;
/// CPython caches only the empty and one-byte ones). A new reference, or null with an
/// exception set.
inline PyObject* new_entry() { return PyBytes_FromString("gilonce: a computation"); }

/// `record` (or nothing) with one more entry, `entry` (borrowed): a new reference, or null
/// with an exception set.
inline PyObject* record_with(PyObject* record, PyObject* entry) {
    const Py_ssize_t n = record != nullptr && PyTuple_Check(record) ? PyTuple_GET_SIZE(record) : 0;
    PyObject* longer = PyTuple_New(n + 1);
    if (longer == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(longer, i, Py_NewRef(PyTuple_GET_ITEM(record, i)));
    PyTuple_SET_ITEM(longer, n, Py_NewRef(entry));
    return longer;
}

/// One computation's entry in the current context's record, from `enter` to `leave`.
/// A holder (attempt.hpp): its destructor does nothing, so a thread torn down meanwhile
/// leaves its entry and its live node behind (a leak, and a dead context kept "inside").
class context_record {
public:
    enum class entry { entered, reentrant, failed };
    context_record() noexcept = default;
    context_record(const context_record&) = delete;
    context_record& operator=(const context_record&) = delete;

    /// Checks, then records, that this context is inside a new computation of `live`'s value.
    /// Returns: `entered`; `reentrant` (it already was: nothing is recorded); or `failed`
    /// with a Python exception set. Requires: the GIL is held.
    entry enter(live_computations& live) {
        PyObject* var = record_variable();
        PyObject* outer = nullptr;
        if (var == nullptr || PyContextVar_Get(var, nullptr, &outer) < 0) return entry::failed;
        const bool inside = outer != nullptr && live.named_in(outer);
        live_computations::node* computation = inside ? nullptr : live.begin(new_entry());
        PyObject* inner = computation != nullptr ? record_with(outer, computation->entry) : nullptr;
        Py_XDECREF(outer);
        if (inside) return entry::reentrant;
        token_ = inner != nullptr ? PyContextVar_Set(var, inner) : nullptr;
        Py_XDECREF(inner);
        if (token_ == nullptr) {
            if (computation != nullptr) live.end(computation);
            if (!PyErr_Occurred()) PyErr_NoMemory();
            return entry::failed;
        }
        var_ = var, live_ = &live, computation_ = computation;
        return entry::entered;
    }

    /// Ends the computation and restores the record, keeping any Python exception set. An
    /// explicit call, since restoring allocates, which may run a collection and a `__del__`
    /// that releases the GIL, where a forced unwind may start. Requires: the GIL is held.
    void leave() {
        PyObject* var = std::exchange(var_, nullptr);  // left from here: nothing to abandon
        if (var == nullptr) return;
        live_->end(computation_);
        set_aside_exception pending;
        if (PyContextVar_Reset(var, token_) < 0) PyErr_Clear();  // another context: ended anyway
        Py_DECREF(token_);
        pending.put_back();
    }

private:
    PyObject* var_ = nullptr;  // borrowed from the interpreter dict; null once left
    PyObject* token_ = nullptr;
    live_computations* live_ = nullptr;
    live_computations::node* computation_ = nullptr;
};

}  // namespace gilonce::detail
