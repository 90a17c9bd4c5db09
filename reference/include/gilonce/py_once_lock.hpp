// gilonce/py_once_lock.hpp: an exactly-once cell for GIL builds and free-threaded builds.
//
// `gil_once_cell` never blocks but may run an initializer twice, and leans on a GIL that a
// free-threaded (Py_GIL_DISABLED) build does not have. `py_once_lock` runs the initializer
// once per successful initialization: other threads wait for it, and they always wait
// *detached* (GIL released, thread state detached), which keeps the GIL deadlock of a
// `static` away on a GIL build and a stop-the-world pause from deadlocking on a
// free-threaded one.
#pragma once

#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "detail/attempt.hpp"
#include "detail/once_core.hpp"
#include "errors.hpp"
#include "gil_token.hpp"

namespace gilonce {
namespace detail {

/// The core's hooks for a real interpreter: detaching is PyEval_SaveThread (GIL released;
/// free-threaded: a stop-the-world pause need not wait for this thread), attaching is
/// PyEval_RestoreThread, which may end a daemon thread during Py_Finalize (up to 3.13).
struct python_attachment {
    PyThreadState* saved = nullptr;
    bool in_main = false;
    void detach() noexcept {
        in_main = PyInterpreterState_Get() == PyInterpreterState_Main();
        saved = PyEval_SaveThread();
    }
    void attach() { PyEval_RestoreThread(saved); }
    /// Whether this thread may wait for another's initializer: not in the main interpreter
    /// once Py_Finalize has begun, when that thread is ended (up to 3.13) or parked for ever
    /// (3.14) as it next wants the interpreter. Safe detached (an atomic read).
    bool may_wait() const noexcept { return !(in_main && interpreter_is_finalizing()); }
};

/// A holder (attempt.hpp) of this thread's claim: its destructor gives up a claim still held
/// (a reset under the core's mutex, no C API) and wakes one waiter; after a publish or a
/// reset it does nothing.
struct claim_holder {
    once_core& core;
    ~claim_holder() { core.abandon(); }
};

}  // namespace detail

/// An exactly-once cell: the first caller runs the initializer, every other caller waits for
/// it, detached, and gets the same value. GIL builds and free-threaded builds alike.
///
/// Invariant: the value is built before the state becomes `full` (a release store) and never
/// changes after; a reader that sees `full` (an acquire load) sees it. Only the thread that
/// claimed the cell runs an initializer, and a claim ends in a publish or a reset.
///
/// Contract:
/// - Every member requires an attached thread state (a GIL build: the GIL), shown by a token.
/// - While the initializer runs (it runs attached, and may release the GIL) other callers
///   wait, detached; when it succeeds all of them get its value.
/// - A failing initializer (a C++ exception; for `get_or_try_init` a `std::nullopt`, a value
///   with a Python exception set, or an empty handle) leaves the cell empty, its failure goes
///   to its own caller, and exactly one waiter wakes and runs its own initializer.
/// - Re-entry (the initializer, on its own OS thread, asks for this cell) is an error naming
///   the cell, not a self-deadlock. A greenlet is not a thread here: another greenlet of the
///   same thread gets the error too (waiting would block the thread that must finish).
/// - What a caller may NOT assume: that it cannot deadlock. The cell is a lock: an initializer
///   that waits for something held by a thread that waits for this cell waits for ever, as two
///   locks taken in opposite orders do. The import system's module locks are such waits: an
///   initializer that imports module M, while another thread imports M whose code asks for
///   this cell, deadlocks both. Import before asking for the cell, as the example does. Nor
///   that a waiter can be interrupted: KeyboardInterrupt reaches it after the initializer.
/// - fork(): a child forked while another thread runs the initializer finds the cell running
///   for ever, like a `std::mutex` held at fork (a thread of the child that is given the
///   claimer's id, which glibc reuses, gets a re-entry error instead). Before or after is fine.
/// - Nor that a claim always ends: an initializer suspended in a greenlet that never resumes
///   before its thread ends (greenlet then drops the stack without unwinding it) keeps the
///   cell claimed for ever, as a lock its holder never released: callers wait, or, given the
///   dead thread's reused id, get a re-entry error. Finish initializers before a thread ends.
/// - One interpreter, and T as for `gil_once_cell`.
/// - Not constant-initialized (`std::condition_variable` is not constexpr in libstdc++): a
///   function-local `static`, module state or an object member is fine; a namespace-scope
///   one must not be used by another translation unit's static initializer.
/// - Destruction: as `gil_once_cell`; and a `static` cell destroyed at exit while daemon
///   threads are inside or waiting leaves its mutex and condition variable undestroyed, so
///   exit finishes. A cell in module state must outlive its users: a native thread that
///   uses it holds a reference to the module (a call from Python does), so that `m_free`
///   cannot run under it.
/// - During Py_Finalize, in the main interpreter, a caller never waits for another thread's
///   initializer (that thread is ended or parked as it next wants the interpreter): the call
///   fails (`std::runtime_error`, or a `RuntimeError`, naming the cell).
/// - A thread torn down by `pthread_exit` inside the initializer unwinds without a C-API
///   call, leaks what it holds, resets the cell and wakes one waiter.
/// - Fast path on a full cell: one acquire load and a branch, inlined.
///
/// Example:
/// @code
///   #include <gilonce/py_once_lock.hpp>
///   #include <gilonce/py_ref.hpp>
///
///   static gilonce::py_once_lock<gilonce::py_ref> json_dumps{"json.dumps"};
///
///   PyObject* dumps(gilonce::gil_token gil) {   // Requires: an attached thread state.
///       if (const gilonce::py_ref* f = json_dumps.get(gil)) return f->get();  // borrowed
///       // Import first, holding no cell: never inside the initializer (the import lock).
///       gilonce::py_ref json = gilonce::py_ref::steal(PyImport_ImportModule("json"));
///       if (!json) return nullptr;
///       const gilonce::py_ref* f = json_dumps.get_or_try_init(gil, [&]() -> std::optional<gilonce::py_ref> {
///           return gilonce::py_ref::steal(PyObject_GetAttrString(json.get(), "dumps"));  // runs once
///       });
///       return f ? f->get() : nullptr;   // borrowed; null with a Python error set
///   }
/// @endcode
///
/// @tparam T as for `gil_once_cell`; nothrow move constructible, with a move constructor
///         that calls no C API (the value is moved into the cell detached).
template <class T>
class py_once_lock {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "py_once_lock<T>: T is moved into the cell detached, under a mutex, and must not throw there");

public:
    /// An empty cell. `name`, a string literal, names it in errors; null: the default.
    explicit py_once_lock(const char* name = "gilonce::py_once_lock") noexcept
        : name_(name != nullptr ? name : "gilonce::py_once_lock") {}
    py_once_lock(const py_once_lock&) = delete;
    py_once_lock& operator=(const py_once_lock&) = delete;
    /// Destroys the value if this thread is attached to a live interpreter, else leaks it.
    ~py_once_lock() {
        if (core_.is_full() && !std::is_trivially_destructible_v<T> && detail::this_thread_holds_the_gil()) slot_.value.~T();
    }

    /// The name given at construction.
    const char* name() const noexcept { return name_; }

    /// Never blocks. Returns: the value, or null if the cell is empty or being initialized.
    const T* get(gil_token) const noexcept { return core_.is_full() ? &slot_.value : nullptr; }

    /// The stored value, first running `init()` (returning T) if no one has.
    /// Blocks, detached, while another thread's `init` runs.
    /// Throws: what `init` throws (the cell stays empty; one waiter retries);
    /// `reentrant_init_error` on re-entry; `empty_value_error` for an empty handle. A Python
    /// exception `init` leaves set beside a value is not looked at: as `gil_once_cell`.
    template <class F>
    const T& get_or_init(gil_token, F&& init) {
        if (core_.is_full()) return slot_.value;  // the fast path: a load and a branch
        return *initialize<detail::reporting::throws>(init);
    }

    /// The C API flavour: `init()` returns `std::optional<T>`. Requires: no Python exception
    /// set on entry. Returns: the value, or null with a Python exception set (`init`'s own;
    /// a `SystemError` if it broke the convention; a `RuntimeError` on re-entry). C++
    /// exceptions from `init` propagate.
    template <class F>
    const T* get_or_try_init(gil_token, F&& init) {
        if (core_.is_full()) return &slot_.value;  // the fast path: a load and a branch
        return initialize<detail::reporting::sets_python_error>(init);
    }

    /// Empties the cell and hands the value over (an empty or initializing cell: nullopt).
    /// Not thread-safe, unlike every other member. Requires: no other thread uses the cell
    /// meanwhile, and no reference it handed out is still in use (the tag says so).
    std::optional<T> take(gil_token, invalidates_references_t) {
        detail::held<T> out;  // a holder: attach() may end this thread (attempt.hpp)
        detail::python_attachment hooks;
        core_.empty_if_full(hooks, [&]() noexcept {
            out.value.emplace(std::move(slot_.value));
            slot_.value.~T();  // a moved-from handle: no C API call
        });
        return std::move(out.value);  // leaves a moved-from handle for ~held: nothing to abandon
    }

    /// For `m_traverse`/`tp_traverse`: visits the stored reference. Requires: called by the
    /// collector, with no `take`/`clear` racing. Returns: 0, or the first non-zero result.
    int traverse(visitproc visit, void* arg) const { return core_.is_full() ? detail::traverse(slot_.value, visit, arg) : 0; }

    /// For `m_clear`/`tp_clear`: empties the cell and releases the value; `take`'s rules
    /// apply. May run Python code (the value's finalizer).
    void clear(gil_token gil, invalidates_references_t tag) {
        detail::held<T> taken;  // a holder: the release below may run a `__del__`
        taken.value = take(gil, tag);
        if (taken.value) detail::release_now(*taken.value);
    }

private:
    // The one slow path, for both flavours: wait for the value or claim the cell; run the
    // initializer; publish its value, or reset the cell before reporting why not (releasing
    // a value may run a `__del__` that asks for the cell).
    template <detail::reporting mode, class F>
    GILONCE_COLD const T* initialize(F& init) {
        if (core_.running_on_this_thread())
            return detail::fail<mode, reentrant_init_error>(PyExc_RuntimeError, who() + ": " + reentry_text);
        detail::python_attachment hooks;
        detail::claim_holder claim{core_};  // a holder: a forced unwind gives the claim up
        const auto found = core_.wait_or_claim(hooks);
        if (found == detail::once_core::outcome::full) return &slot_.value;  // another thread's value
        if (found == detail::once_core::outcome::refused)
            return detail::fail<mode, std::runtime_error>(PyExc_RuntimeError, who() + ": " + finalizing_text);
        detail::attempt<T, mode> made(init);  // attached; the others wait detached
        if (!made.succeeded()) {
            core_.reset(hooks);
            return made.report_failure(who());
        }
        core_.publish(hooks, [&]() noexcept { ::new (static_cast<void*>(&slot_.value)) T(made.take()); });
        return &slot_.value;
    }

    static constexpr const char* reentry_text =
        "re-entrant initialization (its initializer asked, on its own thread, for the value it is computing: "
        "waiting would deadlock)";
    static constexpr const char* finalizing_text =
        "another thread is running its initializer while the interpreter is finalizing; that thread is ended "
        "or parked when it next wants the interpreter, so waiting might never end";
    std::string who() const { return std::string("py_once_lock '") + name_ + "'"; }

    union slot {
        slot() noexcept : unused() {}
        ~slot() {}  // the cell decides when, and whether, the value is destroyed
        char unused;
        T value;
    };
    slot slot_;  // first: its address is the cell's, so `get` needs no address arithmetic
    detail::once_core core_;
    const char* name_;
};

}  // namespace gilonce
