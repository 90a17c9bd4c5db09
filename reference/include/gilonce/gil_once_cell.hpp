// gilonce/gil_once_cell.hpp: a write-once cell that uses the GIL as its only lock.
//
// Lazily computed values in an extension (a type object, an imported function, a constant)
// are often guarded by a function-local `static` or `std::call_once`. Both deadlock as soon
// as the initializer releases the GIL while another thread waits for the once-lock holding
// the GIL. `gil_once_cell` never blocks: racing threads may each compute a value, and the
// first one stored is kept.
#pragma once

#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#if defined(Py_GIL_DISABLED)
#error "gilonce::gil_once_cell uses the GIL as its only lock, and this free-threaded (Py_GIL_DISABLED) \
build has no GIL: two threads could both fill the cell. Use gilonce::py_once_lock \
(gilonce/py_once_lock.hpp): exactly-once, and it detaches from the interpreter while it waits."
#endif

#include "detail/attempt.hpp"
#include "detail/context_record.hpp"
#include "errors.hpp"
#include "gil_token.hpp"

namespace gilonce {

/// A cell written at most once and read many times, with the GIL as its lock.
///
/// Invariant: `full_` is true exactly when the slot holds the value, and both change only
/// with the GIL held, so a reader that sees `full_` sees the value (the GIL orders them).
///
/// Contract:
/// - Never blocks. Every member requires the GIL (a `gil_token`) and takes no other lock.
/// - **The initializer may run more than once**, concurrently: if it releases the GIL,
///   another thread that finds the cell empty runs its own. The first to *complete* stores
///   its value; a later one's value is released at once, under the GIL (a raw pointer is
///   left alone), and its caller gets the stored value.
/// - A failing initializer (it throws; or, for `get_or_try_init`, reports a Python error or
///   returns an empty handle) leaves the cell empty; the failure goes to its own caller,
///   and the next call tries again.
/// - Re-entry (the initializer, in its own execution context, asks for this cell) is an
///   error naming the cell. The context is Python's: each thread and each greenlet has its
///   own, so another greenlet on the same thread is another caller. A context *copied*
///   while the initializer runs (`copy_context()`, asyncio's `call_soon`, `create_task`,
///   `to_thread`) is that initialization until it ends, an ordinary caller after. Code that
///   recurses through a brand-new `contextvars.Context()` escapes the check, and so does
///   Python code that finds the record's `ContextVar` and overwrites it (sabotage: entries
///   are matched by identity, so nothing worse follows than a missed or false re-entry).
/// - Destruction releases the value only if the calling thread holds the GIL of a live
///   interpreter (so a cell in module state releases it in `m_clear`/`m_free`, even while
///   Py_Finalize clears modules); otherwise it is leaked on purpose: a `static` cell
///   destroyed at exit, after Py_Finalize, touches no Python object. A destructor cannot let
///   a forced unwind pass: a cell whose value's release may run Python code that releases
///   the GIL (a `__del__`) is emptied by `clear` before it is destroyed.
/// - One interpreter: a `static` cell holds the objects of the interpreter that filled it,
///   and the GIL it relies on is that interpreter's. An extension used from several
///   interpreters (sub-interpreters, or Py_Finalize then Py_Initialize) keeps its values in
///   module state or in a `per_interpreter_cell` (per_interpreter.hpp) instead.
/// - A thread torn down by `pthread_exit` anywhere in the slow path (a daemon thread during
///   Py_Finalize, CPython up to 3.13) unwinds through the cell without a C-API call: what it
///   holds is leaked (the holders of gilonce/detail/attempt.hpp).
/// - Fast path on a full cell: one load and a branch, inlined.
///
/// Example:
/// @code
///   #include <gilonce/gil_once_cell.hpp>
///   #include <gilonce/py_ref.hpp>
///
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
/// @tparam T a C++ value, `gilonce::py_ref`, `pybind11::object`, or a raw pointer such as
///         `PyObject*` (never owned: prefer `py_ref`). A null handle is "empty" and never
///         stored. T's destructor must be safe to run with the GIL held. A T that owns
///         Python objects is a handle, or gives the three members of the handle protocol
///         (gilonce/detail/handles.hpp); any other (a `std::pair` of `py_ref`s) is released
///         by its destructor, which a forced unwind cannot pass: the process ends.
template <class T>
class gil_once_cell {
public:
    /// An empty cell, constant-initialized (a `static` cell has no initialization-order
    /// problem). `name`, a string literal, names the cell in errors; null: the default.
    constexpr explicit gil_once_cell(const char* name = "gilonce::gil_once_cell") noexcept
        : name_(name != nullptr ? name : "gilonce::gil_once_cell") {}
    gil_once_cell(const gil_once_cell&) = delete;
    gil_once_cell& operator=(const gil_once_cell&) = delete;
    /// Destroys the value if this thread holds the GIL of a live interpreter, else leaks it.
    ~gil_once_cell() {
        if (full_ && !std::is_trivially_destructible_v<T> && detail::this_thread_holds_the_gil()) slot_.value.~T();
    }

    /// The name given at construction.
    const char* name() const noexcept { return name_; }

    /// Requires: the GIL is held. Returns: the stored value, or null if the cell is empty.
    const T* get(gil_token) const noexcept { return full_ ? &slot_.value : nullptr; }

    /// Stores `value` if the cell is empty. Requires: the GIL is held.
    /// Returns: true if stored; false if the cell was full (`value` is released first).
    /// Throws: `empty_value_error` if `value` is an empty handle.
    bool set(gil_token, T value) {
        if (detail::is_empty(value)) throw empty_value_error(who() + ": set was given an empty handle");
        if (!full_) {
            store(std::move(value));
            return true;
        }
        detail::held<T> loser;  // a holder: the release below may run a `__del__`
        loser.value.emplace(std::move(value));
        detail::release_now(*loser.value);
        return false;
    }

    /// The stored value, first running `init()` (returning T) if the cell is empty.
    /// Requires: the GIL is held; `init` may release and re-acquire it.
    /// Returns: the stored value, valid until the cell is destroyed or emptied.
    /// Throws: what `init` throws; `reentrant_init_error` on re-entry; `empty_value_error`
    /// if `init` returns an empty handle (a Python exception it set stays set). The cell
    /// stays empty on every failure. A Python exception `init` leaves set beside a value is
    /// not looked at (this flavour reports failures by throwing): the value is stored, and
    /// the exception stays set.
    template <class F>
    const T& get_or_init(gil_token, F&& init) {
        if (full_) return slot_.value;  // the fast path: a load and a branch
        return *initialize<detail::reporting::throws>(init);
    }

    /// The C API flavour: `init()` returns `std::optional<T>`, `std::nullopt` with a Python
    /// exception set for a failure. Requires: the GIL is held, no Python exception set.
    /// An empty handle with an exception set is a failure too (what a failed C-API call
    /// returns, as in the example). Returns: the stored value; or null with a Python
    /// exception set: `init`'s own, a `SystemError` if `init` broke the convention (failed,
    /// or returned an empty handle, without an exception; returned a value with one), or a
    /// `RuntimeError` on re-entry. C++ exceptions from `init` propagate. The cell stays
    /// empty on every failure.
    template <class F>
    const T* get_or_try_init(gil_token, F&& init) {
        if (full_) return &slot_.value;  // the fast path: a load and a branch
        return initialize<detail::reporting::sets_python_error>(init);
    }

    /// Empties the cell and hands the value over (for tests, and state rebuilt by its one
    /// owner). Invalidates every reference the cell handed out: the tag says the caller knows
    /// none is in use. Requires: the GIL is held.
    std::optional<T> take(gil_token, invalidates_references_t) {
        if (!full_) return std::nullopt;
        std::optional<T> out(std::move(slot_.value));
        slot_.value.~T();
        full_ = false;
        return out;
    }

    /// For `m_traverse`/`tp_traverse` of a cell in module state or an object: visits the
    /// reference the cell owns (not a raw pointer; not a value still being computed).
    /// Requires: the GIL is held. Returns: 0, or the first non-zero result of `visit`.
    int traverse(visitproc visit, void* arg) const { return full_ ? detail::traverse(slot_.value, visit, arg) : 0; }

    /// For `m_clear`/`tp_clear`: empties the cell and releases the value; `take`'s rules
    /// apply, and a later `get_or_init` computes it again. Requires: the GIL is held. May
    /// run Python code (the value's finalizer).
    void clear(gil_token gil, invalidates_references_t tag) {
        detail::held<T> taken;  // a holder: the release below may run a `__del__`
        taken.value = take(gil, tag);
        if (taken.value) detail::release_now(*taken.value);
    }

private:
    // The one slow path, for both flavours: run the initializer with this context recorded
    // as inside it, end the record (before a losing value's `__del__` can ask for the cell),
    // then keep the value if the cell is still empty, else release it.
    template <detail::reporting mode, class F>
    GILONCE_COLD const T* initialize(F& init) {
        detail::context_record record;  // a holder: a forced unwind leaves the entry behind
        const auto entered = record.enter(live_);
        if (entered == detail::context_record::entry::reentrant)
            return detail::fail<mode, reentrant_init_error>(PyExc_RuntimeError, who() + ": " + reentry_text);
        if (entered == detail::context_record::entry::failed) return record_failed<mode>();
        detail::attempt<T, mode> made(init);  // may release the GIL: others may fill the cell
        record.leave();
        if (!made.succeeded()) return made.report_failure(who());
        if (full_) made.release_now();  // another initializer won
        else store(made.take());
        return &slot_.value;
    }

    static constexpr const char* reentry_text =
        "re-entrant initialization (its initializer asked, in its own thread or greenlet, for the value it is computing)";
    std::string who() const { return std::string("gil_once_cell '") + name_ + "'"; }
    void store(T&& value) {  // Requires: the GIL is held and the cell is empty.
        ::new (static_cast<void*>(&slot_.value)) T(std::move(value));
        full_ = true;
    }
    // The record itself could not be made (memory): the C++ flavour throws its reason.
    template <detail::reporting mode>
    std::nullptr_t record_failed() const {
        if constexpr (mode == detail::reporting::sets_python_error) return nullptr;  // its error is set
        PyObject* error = detail::take_exception();
        PyObject* text = error != nullptr ? PyObject_Str(error) : nullptr;
        std::string why = text != nullptr && PyUnicode_AsUTF8(text) != nullptr ? PyUnicode_AsUTF8(text) : "";
        if (why.empty() && error != nullptr) why = Py_TYPE(error)->tp_name;  // MemoryError()'s text is ""
        Py_XDECREF(text);
        Py_XDECREF(error);
        PyErr_Clear();
        throw std::runtime_error(who() + ": cannot record the initialization: " + why);
    }

    union slot {
        constexpr slot() noexcept : unused() {}
        ~slot() {}  // the cell decides when, and whether, the value is destroyed
        char unused;
        T value;
    };
    const char* name_;
    bool full_ = false;  // under the GIL
    slot slot_;
    detail::live_computations live_;  // this cell's initializations in progress
};

}  // namespace gilonce
