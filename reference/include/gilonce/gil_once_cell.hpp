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

#include "gil_token.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define GILONCE_COLD __attribute__((noinline, cold))
#elif defined(_MSC_VER)
#define GILONCE_COLD __declspec(noinline)
#else
#define GILONCE_COLD
#endif

namespace gilonce {

/// Thrown (or, from `get_or_try_init`, raised as a Python `RuntimeError`) when an
/// initializer asks, on the same thread, for the value of the cell it is initializing.
/// Without this check the recursion would never end: it would overflow the stack.
class reentrant_init_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A cell that is written at most once and read many times, with the GIL as its lock.
///
/// Semantics (each one is tested in tests/cpp/test_gil_once_cell_*.cpp):
/// - Never blocks. Every member requires the GIL (a `gil_token`) and takes no other lock.
/// - If the initializer releases the GIL, another thread that finds the cell empty runs its
///   own initializer: **the initializer may run more than once**, concurrently.
/// - The first initializer to *complete* stores its value. A later one's value is
///   destroyed at once, under the GIL (for a Python object: decref'd), and that caller
///   gets the stored value. Every caller gets a reference to the same stored value.
/// - An initializer that fails (throws, or for `get_or_try_init` reports a Python error)
///   leaves the cell empty; the failure propagates and the next call tries again.
/// - Re-entrant initialization (the initializer asks for this cell on the same thread) is
///   an error naming the cell, not a stack overflow and not a hang.
/// - A stored value is destroyed by the cell's destructor only if the interpreter is still
///   initialized and this thread holds the GIL. Otherwise (a `static` cell destroyed at
///   process exit, after `Py_Finalize`) it is deliberately leaked, so no Python object is
///   ever decref'd after the interpreter is gone.
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
/// @tparam T the stored type: a C++ value, `gilonce::py_ref`, or `pybind11::object`.
///         Its destructor must be safe to run with the GIL held.
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
    bool set(gil_token, T value);

    /// Returns the stored value, first running `init()` (returning T) if the cell is empty.
    /// Requires: the GIL is held. `init` may release and re-acquire the GIL.
    /// Returns: a reference to the stored value, valid until `take`/`reset` or destruction.
    /// Throws: whatever `init` throws (the cell stays empty); `reentrant_init_error` if
    /// `init`, on this thread, asks for this cell again.
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
    /// (its exception; a `SystemError` if it failed without setting one or set one and
    /// still returned a value) or when the call is re-entrant (a `RuntimeError` naming the
    /// cell). The cell stays empty on failure and the next call retries.
    /// C++ exceptions thrown by `init` propagate, as in `get_or_init`.
    template <class F>
    const T* get_or_try_init(gil_token gil, F&& init) {
        if (full_) return &slot_.value;
        return get_or_try_init_slow(gil, std::forward<F>(init));
    }

    /// Empties the cell and hands the value to the caller (for tests and for re-creating
    /// state after `Py_Finalize`). Requires: the GIL is held.
    std::optional<T> take(gil_token);

    /// Empties the cell, destroying the value under the GIL. Requires: the GIL is held.
    void reset(gil_token gil) { (void)take(gil); }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    // The cells being initialized by this thread form a stack of frames that live on the
    // initializing calls' own stack frames: re-entrancy detection costs no allocation,
    // and it is only consulted on the slow path.
    struct init_frame {
        const void* cell;
        init_frame* outer;
    };
    static init_frame*& innermost_frame() noexcept {
        static thread_local init_frame* innermost = nullptr;
        return innermost;
    }
    class init_frame_guard {
    public:
        explicit init_frame_guard(const void* cell) noexcept
            : frame_{cell, innermost_frame()} { innermost_frame() = &frame_; }
        ~init_frame_guard() { innermost_frame() = frame_.outer; }
        init_frame_guard(const init_frame_guard&) = delete;
        init_frame_guard& operator=(const init_frame_guard&) = delete;
    private:
        init_frame frame_;
    };
    bool this_thread_is_initializing() const noexcept {
        for (init_frame* f = innermost_frame(); f != nullptr; f = f->outer)
            if (f->cell == this) return true;
        return false;
    }
    std::string reentry_message() const {
        return std::string("gil_once_cell '") + name_ +
               "': re-entrant initialization (its initializer asked, on the same thread, "
               "for the value it is computing)";
    }

    template <class F>
    GILONCE_COLD const T& get_or_init_slow(gil_token gil, F&& init);
    template <class F>
    GILONCE_COLD const T* get_or_try_init_slow(gil_token gil, F&& init);
    // Requires: the GIL is held and the cell is empty.
    void store(T&& value) {
        ::new (static_cast<void*>(&slot_.value)) T(std::move(value));
        full_ = true;
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
};

template <class T>
gil_once_cell<T>::~gil_once_cell() {
    if (!full_) return;
    if constexpr (!std::is_trivially_destructible_v<T>) {
        // Py_IsInitialized() first: PyGILState_Check() is meaningless after finalization.
        if (Py_IsInitialized() && PyGILState_Check()) slot_.value.~T();
        // else: leaked on purpose (see the class comment).
    }
}

template <class T>
bool gil_once_cell<T>::set(gil_token, T value) {
    if (full_) return false;  // `value` is destroyed here, with the GIL held
    store(std::move(value));
    return true;
}

template <class T>
std::optional<T> gil_once_cell<T>::take(gil_token) {
    if (!full_) return std::nullopt;
    std::optional<T> out(std::move(slot_.value));
    slot_.value.~T();
    full_ = false;
    return out;
}

template <class T>
template <class F>
const T& gil_once_cell<T>::get_or_init_slow(gil_token, F&& init) {
    if (this_thread_is_initializing()) throw reentrant_init_error(reentry_message());
    T value = [&] {
        init_frame_guard frame(this);
        return std::forward<F>(init)();  // may release the GIL: other threads may run
    }();
    // The GIL is held again. If another initializer completed meanwhile, it won: `value`
    // is destroyed at the end of this scope, under the GIL.
    if (!full_) store(std::move(value));
    return slot_.value;
}

template <class T>
template <class F>
const T* gil_once_cell<T>::get_or_try_init_slow(gil_token, F&& init) {
    if (this_thread_is_initializing()) {
        PyErr_SetString(PyExc_RuntimeError, reentry_message().c_str());
        return nullptr;
    }
    std::optional<T> value = [&] {
        init_frame_guard frame(this);
        return std::optional<T>(std::forward<F>(init)());
    }();
    if (!value) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_SystemError,
                         "gil_once_cell '%s': initializer failed without setting an exception",
                         name_);
        return nullptr;
    }
    if (PyErr_Occurred()) {
        value.reset();  // a half-failed initializer: discard its value, report the error
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        PyErr_NormalizeException(&type, &val, &tb);
        PyErr_Format(PyExc_SystemError,
                     "gil_once_cell '%s': initializer returned a value with an exception set",
                     name_);
        PyObject *type2, *val2, *tb2;
        PyErr_Fetch(&type2, &val2, &tb2);
        PyErr_NormalizeException(&type2, &val2, &tb2);
        PyException_SetCause(val2, val);  // steals `val`
        Py_XDECREF(type);
        Py_XDECREF(tb);
        PyErr_Restore(type2, val2, tb2);
        return nullptr;
    }
    if (!full_) store(std::move(*value));
    return &slot_.value;
}

}  // namespace gilonce
