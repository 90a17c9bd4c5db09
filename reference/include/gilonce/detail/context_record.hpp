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
// entry naming a computation that V's `live_computations` still holds. An entry names one
// computation of the process: this extension's tag (a private variable's address) and a
// serial it never reuses. A computation leaves the live list when it ends, so an entry left in
// a copy means nothing from then on, and a leaked entry (a thread torn down) only keeps a
// dead thread's context "inside".
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

#include "python.hpp"

namespace gilonce::detail {

/// Serials of computations, private to this extension; its address is the extension's tag.
GILONCE_EXTENSION_PRIVATE inline std::atomic<std::uint64_t> computation_counter{0};

/// What an entry of the record holds: 16 bytes, kept as a Python `bytes`.
struct computation_id {
    const void* tag;
    std::uint64_t serial;
};

#if defined(Py_GIL_DISABLED)
using live_list_lock = std::mutex;  // held for a few pointer operations, never around Python code
#else
struct live_list_lock {  // the GIL is the lock
    void lock() noexcept {}
    void unlock() noexcept {}
};
#endif

/// The computations of one lazy value in progress; owned by the value, constant-initialized.
/// Each is a heap node, so that one a torn-down thread abandons stays linked and valid.
class live_computations {
public:
    struct node {
        std::uint64_t serial;
        node* next;
    };
    constexpr live_computations() noexcept = default;
    live_computations(const live_computations&) = delete;
    live_computations& operator=(const live_computations&) = delete;
    ~live_computations() {
        while (head_ != nullptr) delete std::exchange(head_, head_->next);
    }
    /// A new live computation, or null when out of memory. Requires: the GIL is held.
    node* begin() noexcept {
        node* fresh = new (std::nothrow) node{computation_counter.fetch_add(1, std::memory_order_relaxed) + 1, nullptr};
        if (fresh == nullptr) return nullptr;
        std::lock_guard<live_list_lock> held(lock_);
        fresh->next = std::exchange(head_, fresh);
        return fresh;
    }
    /// Ends `computation`. Requires: the GIL is held.
    void end(node* computation) noexcept {
        std::lock_guard<live_list_lock> held(lock_);
        for (node** link = &head_; *link != nullptr; link = &(*link)->next) {
            if (*link == computation) {
                *link = computation->next;
                delete computation;
                return;
            }
        }
    }
    /// Whether `record` (a context's record) names a computation of this list.
    bool named_in(PyObject* record) const noexcept {
        const Py_ssize_t n = PyTuple_Check(record) ? PyTuple_GET_SIZE(record) : 0;
        std::lock_guard<live_list_lock> held(lock_);
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* entry = PyTuple_GET_ITEM(record, i);  // Python code may put anything there
            computation_id id{};
            if (!PyBytes_CheckExact(entry) || PyBytes_GET_SIZE(entry) != sizeof id) continue;
            std::memcpy(&id, PyBytes_AS_STRING(entry), sizeof id);
            if (id.tag == &computation_counter && holds(id.serial)) return true;  // another extension's: not ours
        }
        return false;
    }

private:
    bool holds(std::uint64_t serial) const noexcept {  // Requires: lock_
        for (const node* n = head_; n != nullptr; n = n->next)
            if (n->serial == serial) return true;
        return false;
    }
    mutable live_list_lock lock_;
    node* head_ = nullptr;
};

/// The interpreter's ContextVar of records (a tuple of entries, innermost last), shared by
/// every copy of these headers in the process: the key names the format. Requires: the GIL
/// is held. Returns: a borrowed reference, or null with an exception set.
inline PyObject* record_variable() {
    const char* const key = "gilonce.computing/4";  // a literal: no symbol to share
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

/// `record` (or nothing) with one more entry, `id`: a new reference, or null (exception set).
inline PyObject* record_with(PyObject* record, computation_id id) {
    const Py_ssize_t n = record != nullptr && PyTuple_Check(record) ? PyTuple_GET_SIZE(record) : 0;
    PyObject* entry = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(&id), sizeof id);
    PyObject* longer = entry != nullptr ? PyTuple_New(n + 1) : nullptr;
    if (longer == nullptr) {
        Py_XDECREF(entry);
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(longer, i, Py_NewRef(PyTuple_GET_ITEM(record, i)));
    PyTuple_SET_ITEM(longer, n, entry);
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
        live_computations::node* computation = inside ? nullptr : live.begin();
        PyObject* inner = computation != nullptr ? record_with(outer, {&computation_counter, computation->serial}) : nullptr;
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
