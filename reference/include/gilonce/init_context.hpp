// gilonce/init_context.hpp: which lazy values the *current execution context* is computing.
//
// Re-entrancy ("this initializer asked for the value it is computing") must be told apart
// from a second, independent caller. A thread-local record cannot do that: greenlets
// (gevent, SQLAlchemy's asyncio layer) run many call stacks on one thread, and switching
// from one initializer to another greenlet that asks for the same value is not recursion.
// A `std::thread::id` record is worse: glibc reuses thread ids, and after fork() a new
// thread can inherit the id of a thread that was computing in the parent.
//
// The record therefore lives in a `contextvars.ContextVar`: each thread and each greenlet
// has its own context, so the record cannot outlive a thread, survive a fork into another
// thread, or be mixed up when greenlets finish in any order. A context can be *copied*,
// though (asyncio's call_soon, create_task and to_thread copy the current one), and a copy
// may outlive the computation it was made in. So an entry names one computation: the
// object's address and a serial number the object hands out; the object keeps the serials
// of its computations in progress (`live_computations`), and an entry whose computation
// has ended means nothing. The variable is kept in the interpreter's own dict
// (`PyInterpreterState_GetDict`), so each interpreter has its own, created on first use.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <cstdint>
#include <new>
#include <utility>
#if defined(Py_GIL_DISABLED)
#include <mutex>
#endif

#include "compiler.hpp"

namespace gilonce {
namespace detail {

/// Serials of computations: never reused in this process by this copy of the header, and
/// tagged with the counter's address, which tells the copies in different extension
/// modules apart (the counter is private to each extension, whatever its visibility
/// flags). So an entry names one computation of the process, even after the object it
/// computed is gone and another took its address.
GILONCE_EXTENSION_PRIVATE inline std::atomic<std::uint64_t> computation_counter{0};
GILONCE_EXTENSION_PRIVATE inline std::uint64_t computation_tag() noexcept { return reinterpret_cast<std::uintptr_t>(&computation_counter); }

/// The computations of one lazy value in progress, GIL-guarded (free-threaded builds: by a
/// mutex of its own, held for a few pointer operations, never around Python code); owned
/// by the value.
/// Constant-initialized (a `static` cell stays constant-initialized). Each computation is a
/// heap node, so that one abandoned by a thread torn down without the GIL can stay linked,
/// valid and harmless (it only makes a context copied from that computation look live).
class live_computations {
public:
    /// One computation in progress.
    struct node {
        std::uint64_t serial;  ///< from computation_counter: never reused
        node* next;            ///< the next computation in progress, or null
    };
    /// No computation in progress.
    constexpr live_computations() noexcept = default;
    live_computations(const live_computations&) = delete;
    live_computations& operator=(const live_computations&) = delete;
    ~live_computations() {
        while (head_ != nullptr) delete std::exchange(head_, head_->next);
    }
    /// A new computation, now live; null when out of memory. Requires: the GIL is held.
    /// (Not std::bad_alloc: the cells' C API flavour reports every failure as a Python error.)
    node* begin() noexcept {
        node* fresh = new (std::nothrow) node{computation_counter.fetch_add(1, std::memory_order_relaxed) + 1, nullptr};
        if (fresh == nullptr) return nullptr;
        guard held(*this);
        fresh->next = head_;
        head_ = fresh;
        return fresh;
    }
    /// Ends `computation` (from `begin`). Requires: the GIL is held.
    void end(node* computation) noexcept {
        guard held(*this);
        for (node** link = &head_; *link != nullptr; link = &(*link)->next) {
            if (*link == computation) {
                *link = computation->next;
                delete computation;
                return;
            }
        }
    }
    /// Requires: the GIL is held.
    bool contains(std::uint64_t serial) const noexcept {
        guard held(*this);
        for (const node* n = head_; n != nullptr; n = n->next)
            if (n->serial == serial) return true;
        return false;
    }

private:
#if defined(Py_GIL_DISABLED)
    struct guard {
        explicit guard(const live_computations& live) : lock(live.lock_) {}
        std::lock_guard<std::mutex> lock;
    };
    mutable std::mutex lock_;  // constexpr-constructible: a static cell stays constant-initialized
#else
    struct guard {  // the GIL is the lock
        explicit guard(const live_computations&) noexcept {}
    };
#endif
    node* head_ = nullptr;
};

/// The ContextVar whose value is a tuple of (address, tag, serial) triples (ints), one per
/// computation this context is inside, innermost last. Shared by every copy of this header
/// in the process, so the key names the value's format; change the key if it changes.
/// Requires: the GIL is held. Returns: a borrowed reference, or null with an exception set.
inline PyObject* initializing_var() {
    const char* const key = "gilonce.initializing/3";  // a literal, not a static: no symbol to share
    PyObject* interp_dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (interp_dict == nullptr) {
        PyErr_SetString(PyExc_SystemError, "gilonce: this interpreter has no per-interpreter dict");
        return nullptr;
    }
    PyObject* var = PyDict_GetItemString(interp_dict, key);  // borrowed; str keys: no error
    if (var != nullptr) return var;
    PyObject* fresh = PyContextVar_New(key, nullptr);
    if (fresh == nullptr) return nullptr;
    // SetDefault: if another copy of this header got there first, its variable is used.
    PyObject* key_object = PyUnicode_FromString(key);
    var = key_object ? PyDict_SetDefault(interp_dict, key_object, fresh) : nullptr;
    Py_XDECREF(key_object);
    Py_DECREF(fresh);
    return var;  // borrowed from the interpreter dict, which keeps it alive
}

/// Whether the current context is inside a live computation of `what`. Entries that are
/// not well-formed pairs (the variable is reachable from Python through copy_context())
/// are ignored. Requires: the GIL is held. Returns 1 or 0, or -1 with an exception set
/// (an exception already set on entry is left alone and is not a failure).
inline int context_is_initializing(const void* what, const live_computations& live) {
    PyObject* var = initializing_var();
    if (var == nullptr) return -1;
    PyObject* record = nullptr;
    if (PyContextVar_Get(var, nullptr, &record) < 0) return -1;
    if (record == nullptr) return 0;  // nothing computed in this context yet
    int found = 0;
    const Py_ssize_t n = PyTuple_Check(record) ? PyTuple_GET_SIZE(record) : 0;
    for (Py_ssize_t i = 0; i < n && !found; ++i) {
        PyObject* entry = PyTuple_GET_ITEM(record, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) continue;
        PyObject* address = PyTuple_GET_ITEM(entry, 0);
        PyObject* tag = PyTuple_GET_ITEM(entry, 1);
        PyObject* serial = PyTuple_GET_ITEM(entry, 2);
        if (!PyLong_CheckExact(address) || !PyLong_CheckExact(tag) || !PyLong_CheckExact(serial)) continue;
        // The Mask conversions never fail on an int: no exception can appear here.
        found = PyLong_AsUnsignedLongLongMask(address) == reinterpret_cast<std::uintptr_t>(what) &&
                PyLong_AsUnsignedLongLongMask(tag) == computation_tag() &&
                live.contains(PyLong_AsUnsignedLongLongMask(serial));
    }
    Py_DECREF(record);
    return found;
}

/// Records, for as long as it lives, that the current context is inside a new computation
/// of `what` (and that this computation is live in `live`).
/// Requires: the GIL is held at construction and at destruction, and the destructor runs
/// in the same context (true for the initializer's own call: greenlets and tasks switch
/// contexts away and back, but never return into another one).
/// Check `ok()`: false means the record could not be made, with a Python exception set.
/// `abandon()` (for a thread torn down without the GIL) makes the destructor do nothing.
class initializing_scope {
public:
    /// Adds a computation of `what` to the current context's record.
    /// Requires: the GIL is held.
    initializing_scope(const void* what, live_computations& live) : live_(live) {
        PyObject* var = initializing_var();
        if (var == nullptr) return;
        PyObject* outer = nullptr;
        if (PyContextVar_Get(var, nullptr, &outer) < 0) return;
        computation_ = live_.begin();
        if (computation_ == nullptr) {
            Py_XDECREF(outer);
            PyErr_NoMemory();
            return;
        }
        PyObject* entry = Py_BuildValue("(KKK)", static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(what)),
                                        static_cast<unsigned long long>(computation_tag()),
                                        static_cast<unsigned long long>(computation_->serial));
        PyObject* one = entry ? PyTuple_Pack(1, entry) : nullptr;
        PyObject* inner = one == nullptr ? nullptr
                          : outer != nullptr && PyTuple_Check(outer) ? PySequence_Concat(outer, one)
                                                                      : (Py_INCREF(one), one);
        Py_XDECREF(one);
        Py_XDECREF(entry);
        Py_XDECREF(outer);
        if (inner != nullptr) {
            token_ = PyContextVar_Set(var, inner);
            Py_DECREF(inner);
        }
        if (token_ != nullptr) var_ = var;
        else live_.end(computation_);
    }
    /// Ends the computation and restores the record as it was (keeping any Python
    /// exception set). Call it explicitly, inside the forced-unwind guard: restoring the
    /// record allocates, an allocation may run the garbage collector, and a `__del__` it
    /// runs may release the GIL, where a daemon thread can be torn down during Py_Finalize;
    /// such an unwind must not start inside a destructor. Once ended or abandoned, nothing.
    /// Requires: the GIL is held.
    void end() {
        if (var_ == nullptr) return;
        PyObject* var = std::exchange(var_, nullptr);
        live_.end(computation_);
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyContextVar_Reset(var, token_) < 0) PyErr_Clear();  // not in its context: the computation ended anyway
        Py_DECREF(token_);
        PyErr_Restore(type, value, tb);
    }
    /// A last resort for a path that did not call `end` (none in gilonce): ends it.
    ~initializing_scope() { end(); }
    initializing_scope(const initializing_scope&) = delete;
    initializing_scope& operator=(const initializing_scope&) = delete;

    /// Whether the record was made (false: a Python exception is set).
    bool ok() const noexcept { return var_ != nullptr; }
    /// Makes the destructor do nothing, leaking the record's token and leaving the
    /// computation linked: for a thread torn down without the GIL, where no C-API call is
    /// allowed and GIL-guarded state must not be touched.
    void abandon() noexcept { var_ = nullptr; }

private:
    live_computations& live_;
    live_computations::node* computation_ = nullptr;
    PyObject* var_ = nullptr;    // borrowed from the interpreter dict
    PyObject* token_ = nullptr;  // owned
};

}  // namespace detail
}  // namespace gilonce
