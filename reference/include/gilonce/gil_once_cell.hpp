// gilonce/gil_once_cell.hpp: a write-once cell that uses the GIL as its only lock.
//
// Lazily computed values in an extension (a type object, an imported function, a cached
// constant) are usually guarded by a function-local `static` or `std::call_once`. Both
// deadlock as soon as the initializer releases the GIL while another thread waits for the
// once-lock with the GIL held. `gil_once_cell` never blocks: it lets racing threads each
// compute a value and keeps the first one stored. See walkthroughs/03-gil-as-the-lock.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#if defined(Py_GIL_DISABLED)
#error "gilonce::gil_once_cell uses the GIL as its only lock, and this free-threaded (Py_GIL_DISABLED) \
build has no GIL: two threads could both fill the cell. Use gilonce::py_once_lock \
(gilonce/py_once_lock.hpp): exactly-once, and it detaches from the interpreter while it waits."
#endif

#include "cell_common.hpp"
#include "compiler.hpp"
#include "errors.hpp"
#include "gil_state.hpp"
#include "gil_token.hpp"
#include "handles.hpp"
#include "init_context.hpp"

namespace gilonce {

/// A cell that is written at most once and read many times, with the GIL as its lock.
///
/// Semantics (each one is tested in tests/cpp/test_gil_once_cell_*.cpp and tests/python):
/// - Never blocks. Every member requires the GIL (a `gil_token`) and takes no other lock.
/// - If the initializer releases the GIL, another thread that finds the cell empty runs its
///   own initializer: **the initializer may run more than once**, concurrently.
/// - The first initializer to *complete* stores its value. A later one's value is
///   released at once, under the GIL (a `py_ref` or `pybind11::object`: decref'd; a raw
///   pointer: left alone), and that caller gets the stored value. Every caller gets a
///   reference to the same stored value.
/// - An initializer that fails (throws, or for `get_or_try_init` reports a Python error,
///   or returns an empty handle) leaves the cell empty; the failure propagates and the next
///   call tries again.
/// - Re-entrant initialization (the initializer asks for this cell in its own execution
///   context) is an error naming the cell, not a stack overflow and not a hang. The
///   context is Python's: each thread and each greenlet has its own, so a greenlet that
///   switches away inside an initializer lets another greenlet compute the value too (as
///   another thread would), and greenlets may finish in any order. A context *copied* while
///   the initializer runs (`contextvars.copy_context()`, asyncio's `call_soon`,
///   `create_task`, `to_thread`) is that initialization until it ends, and an ordinary
///   caller after. Code that recurses through a brand-new `contextvars.Context()` escapes
///   the check.
/// - Destruction: the stored value is destroyed by the cell's destructor if the calling
///   thread holds the GIL of a live interpreter (checked on the thread state, so it is also
///   right while Py_FinalizeEx clears modules: a cell in module state releases its object
///   in `m_clear`/`m_free`). Otherwise the value is deliberately leaked: a `static` cell
///   destroyed at process exit, after Py_Finalize, never decrefs a Python object. (pybind11
///   never destroys such storage at all; gilonce destroys when it is safe because the same
///   cell is also used in module state, which must release what it holds.)
/// - A thread ended by `pthread_exit` anywhere in the slow path (a daemon thread during
///   Py_Finalize, CPython 3.11-3.13, wanting the GIL back inside the initializer, inside a
///   losing value's `__del__`, or while an error is chained) unwinds through the cell
///   without calling the C API: what it holds is leaked. Losing values are released by an
///   ordinary call, never inside a destructor, so such an unwind can pass (for a T that is
///   not a handle, such as a struct holding a `py_ref`, by T's destructor: see handles.hpp).
/// - Fast path on a full cell: one load and a branch, inlined. No atomic read-modify-write,
///   no lock, no thread-id lookup: the GIL already orders every write before every read.
///
/// Example:
/// @code
///   static gilonce::gil_once_cell<gilonce::py_ref> json_dumps{"json.dumps"};
///
///   PyObject* dumps(gilonce::gil_token gil) {   // Requires: the GIL is held.
///       const gilonce::py_ref* f = json_dumps.get_or_try_init(gil, []() -> std::optional<gilonce::py_ref> {
///           gilonce::py_ref json = gilonce::py_ref::steal(PyImport_ImportModule("json"));  // may release the GIL
///           if (!json) return std::nullopt;
///           return gilonce::py_ref::steal(PyObject_GetAttrString(json.get(), "dumps"));
///       });
///       return f ? f->get() : nullptr;   // borrowed; null with a Python error set
///   }
/// @endcode
///
/// @tparam T the stored type: a C++ value, `gilonce::py_ref`, `pybind11::object`, or a raw
///         pointer such as `PyObject*`. A raw pointer is not owned: the cell never decrefs
///         it, neither the stored one nor a losing or refused one (prefer `py_ref`). A null
///         `py_ref`/`pybind11::object`/raw pointer is an "empty handle" and never stored.
///         T's destructor must be safe to run with the GIL held.
template <class T>
class gil_once_cell {
public:
    /// An empty cell. Constant-initialized, so a `static` cell has no initialization-order
    /// problem. `name` (a string literal) names the cell in error messages; null gives the
    /// default name.
    constexpr explicit gil_once_cell(const char* name = "gilonce::gil_once_cell") noexcept
        : name_(name != nullptr ? name : "gilonce::gil_once_cell") {}
    gil_once_cell(const gil_once_cell&) = delete;
    gil_once_cell& operator=(const gil_once_cell&) = delete;
    /// Destroys the value if this thread holds the GIL of a live interpreter, else leaks
    /// it (see the class comment).
    ~gil_once_cell();

    /// The name given at construction.
    const char* name() const noexcept { return name_; }

    /// Requires: the GIL is held.
    /// Returns: the stored value, or null if the cell is empty.
    const T* get(gil_token) const noexcept { return full_ ? &slot_.value : nullptr; }

    /// Stores `value` if the cell is empty.
    /// Requires: the GIL is held.
    /// Returns: true if stored; false if the cell was already full, in which case `value`
    /// is destroyed before returning, under the GIL.
    /// Throws: `empty_value_error` if `value` is an empty handle (nothing is stored).
    bool set(gil_token, T value);

    /// Returns the stored value, first running `init()` (returning T) if the cell is empty.
    /// Requires: the GIL is held. `init` may release and re-acquire the GIL.
    /// Returns: a reference to the stored value, valid until the cell is destroyed or
    /// `take` is called (which the caller must then make sure no one else holds).
    /// Throws: whatever `init` throws (the cell stays empty); `reentrant_init_error` if
    /// `init`, in its own context, asks for this cell again; `empty_value_error` if `init`
    /// returns an empty handle (the cell stays empty; a Python exception `init` set stays).
    /// `init` may run more than once, on several threads: see the class comment.
    template <class F>
    const T& get_or_init(gil_token gil, F&& init) {
        if (full_) return slot_.value;  // the fast path: a load and a branch
        return get_or_init_slow(gil, std::forward<F>(init));
    }

    /// C API flavour of `get_or_init`: `init()` returns `std::optional<T>`, and returns
    /// `std::nullopt` with a Python exception set to report failure.
    /// Requires: the GIL is held and no Python exception is set on entry.
    /// Returns: the stored value; or null with a Python exception set when `init` failed
    /// (its exception; a `SystemError` if it failed without setting one, set one and still
    /// returned a value, or returned an empty handle) or when the call is re-entrant (a
    /// `RuntimeError` naming the cell). The cell stays empty on failure and the next call
    /// retries. C++ exceptions thrown by `init` propagate, as in `get_or_init`.
    template <class F>
    const T* get_or_try_init(gil_token gil, F&& init) {
        if (full_) return &slot_.value;  // the fast path: a load and a branch
        return get_or_try_init_slow(gil, std::forward<F>(init));
    }

    /// Empties the cell and hands the value to the caller (for tests, and for state that
    /// is rebuilt by its one owner). Every reference and pointer that `get`, `get_or_init`
    /// or `get_or_try_init` returned is invalidated: the tag says the caller knows that no
    /// one still uses one (PyO3 asks for exclusive access, `&mut self`, for the same
    /// reason; C++ cannot check it, so the call site must say it).
    /// Requires: the GIL is held.
    std::optional<T> take(gil_token, invalidates_references_t);

    /// For a cell in module state (PEP 489/630) or in an object: call it from `m_traverse`
    /// or `tp_traverse`, so the garbage collector sees the reference the cell owns (the
    /// stored `py_ref` or `pybind11::object`; a raw pointer is not owned and not visited).
    /// Requires: the GIL is held (the collector holds it). A value still being computed by
    /// an initializer is not in the cell yet and is not visited.
    /// Returns: 0, or the first non-zero result of `visit`.
    int traverse(visitproc visit, void* arg) const { return full_ ? detail::traverse(slot_.value, visit, arg) : 0; }

    /// For a cell in module state or in an object: call it from `m_clear` or `tp_clear`.
    /// Empties the cell and releases the value (an empty cell is left as it is). As `take`,
    /// it invalidates every reference the cell handed out; a later `get_or_init` computes
    /// the value again.
    /// Requires: the GIL is held. May run Python code (the value's finalizer).
    void clear(gil_token gil, invalidates_references_t tag) {
        std::optional<T> value = take(gil, tag);
        if (value) detail::release_now(*value);
    }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    std::string message(const char* what) const {
        return std::string("gil_once_cell '") + name_ + "': " + what;
    }
    static constexpr const char* reentry_text =
        "re-entrant initialization (its initializer asked, in its own thread or greenlet, "
        "for the value it is computing)";
    static constexpr const char* empty_text = "initializer returned an empty handle";

    template <class F>
    GILONCE_COLD const T& get_or_init_slow(gil_token gil, F&& init);
    template <class F>
    GILONCE_COLD const T* get_or_try_init_slow(gil_token gil, F&& init);
    // Requires: the GIL is held and the cell is empty.
    void store(T&& value) {
        ::new (static_cast<void*>(&slot_.value)) T(std::move(value));
        full_ = true;
    }
    // What a slow path holds while user code runs, and how it lets go of it, without a
    // C-API call, when the thread is torn down without the GIL.
    struct in_flight {
        std::optional<T> value;
        std::optional<detail::initializing_scope> scope;  // destroyed before `value`
        void abandon() noexcept {
            if (scope) scope->abandon();
            if (value) detail::abandon(*value);
        }
    };
    // Stores `value` if the cell is still empty; else another initializer won, and `value`
    // is released now (outside any destructor). Either way `value` is left empty or spent.
    // Requires: the GIL is held.
    void store_or_release(T& value) {
        if (!full_)
            store(std::move(value));
        else
            detail::release_now(value);
    }
    // The current Python exception as a C++ one (C++ flavour), or as a chained
    // SystemError (C API flavour), for failures of the context record itself (memory).
    [[noreturn]] void throw_record_failure() const {
        std::string why = "unknown error";
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyObject* text = value ? PyObject_Str(value) : nullptr) {
            if (const char* utf8 = PyUnicode_AsUTF8(text)) why = utf8;
            Py_DECREF(text);
        }
        if (why.empty() && type != nullptr) why = reinterpret_cast<PyTypeObject*>(type)->tp_name;  // MemoryError()'s text is ""
        PyErr_Clear();
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        throw std::runtime_error(message("cannot record the initialization: ") + why);
    }

    union slot {
        constexpr slot() noexcept : unused() {}
        ~slot() {}  // the cell decides when (and whether) the value is destroyed
        char unused;
        T value;
    };

    const char* name_;
    bool full_ = false;  // written and read only under the GIL
    slot slot_;
    detail::live_computations live_;  // this cell's initializations in progress
};

template <class T>
gil_once_cell<T>::~gil_once_cell() {
    if (!full_) return;
    if constexpr (!std::is_trivially_destructible_v<T>) {
        // Not Py_IsInitialized(): it is already false while Py_FinalizeEx clears modules,
        // when module state must still release its objects.
        if (detail::this_thread_holds_the_gil()) slot_.value.~T();
        // else: leaked on purpose (see the class comment).
    }
}

template <class T>
bool gil_once_cell<T>::set(gil_token, T value) {
    if (detail::is_empty(value)) throw empty_value_error(message(empty_text));
    if (full_) {
        detail::release_now(value);  // with the GIL held, outside a destructor
        return false;
    }
    store(std::move(value));
    return true;
}

template <class T>
std::optional<T> gil_once_cell<T>::take(gil_token, invalidates_references_t) {
    if (!full_) return std::nullopt;
    std::optional<T> out(std::move(slot_.value));
    slot_.value.~T();
    full_ = false;
    return out;
}

// Both slow paths: the record of this computation (`scope`) ends before a losing value is
// released, so a `__del__` that asks for the cell is not taken for re-entry; every C-API
// call that may run Python code (the initializer, ending the record, releasing a loser,
// chaining an error) is inside `call_user_code` and outside any destructor, so a thread
// torn down by pthread_exit anywhere in it leaks what it holds instead of touching Python
// without the GIL.
template <class T>
template <class F>
const T& gil_once_cell<T>::get_or_init_slow(gil_token, F&& init) {
    const int reentrant = detail::context_is_initializing(this, live_);
    if (reentrant < 0) throw_record_failure();
    if (reentrant) throw reentrant_init_error(message(reentry_text));
    in_flight held;
    std::optional<T>& value = held.value;  // (not a structured binding: lambdas capture these)
    std::optional<detail::initializing_scope>& scope = held.scope;
    return detail::call_user_code(
        [&]() -> const T& {
            scope.emplace(this, live_);
            if (!scope->ok()) throw_record_failure();
            // May release the GIL: others may fill the cell. A C++ exception ends the record
            // in the handler, inside this guard.
            value.emplace(detail::call_cleaning_up_on_exception(std::forward<F>(init), [&] { scope->end(); }));
            scope->end();
            if (detail::is_empty(*value)) throw empty_value_error(message(empty_text));
            store_or_release(*value);
            return slot_.value;
        },
        [&]() noexcept { held.abandon(); });
}

template <class T>
template <class F>
const T* gil_once_cell<T>::get_or_try_init_slow(gil_token, F&& init) {
    const int reentrant = detail::context_is_initializing(this, live_);
    if (reentrant < 0) return nullptr;
    if (reentrant) {
        PyErr_SetString(PyExc_RuntimeError, message(reentry_text).c_str());
        return nullptr;
    }
    in_flight held;
    std::optional<T>& value = held.value;  // (not a structured binding: lambdas capture these)
    std::optional<detail::initializing_scope>& scope = held.scope;
    return detail::call_user_code(
        [&]() -> const T* {
            scope.emplace(this, live_);
            if (!scope->ok()) return nullptr;  // the record's Python error is set
            std::optional<T> made = detail::call_cleaning_up_on_exception(
                [&] { return std::optional<T>(std::forward<F>(init)()); }, [&] { scope->end(); });
            if (made) value.emplace(std::move(*made));  // out of this frame: `abandon` sees it
            scope->end();
            if (!value) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_SystemError, message("initializer failed without setting an exception").c_str());
                return nullptr;
            }
            if (PyErr_Occurred()) {  // a half-failed initializer: discard its value, report the error
                detail::release_now(*value);
                raise_from_current(PyExc_SystemError, message("initializer returned a value with an exception set").c_str());
                return nullptr;
            }
            if (detail::is_empty(*value)) {
                PyErr_SetString(PyExc_SystemError, message(empty_text).c_str());
                return nullptr;
            }
            store_or_release(*value);
            return &slot_.value;
        },
        [&]() noexcept { held.abandon(); });
}

}  // namespace gilonce
