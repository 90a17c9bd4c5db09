// gilonce/py_once_lock.hpp: an exactly-once cell for GIL builds and free-threaded builds.
//
// `gil_once_cell` uses the GIL as its lock, so it never blocks but may run an initializer
// twice, and a free-threaded (Py_GIL_DISABLED) build has no GIL to lean on at all.
// `py_once_lock` runs the initializer exactly once per successful initialization: other
// threads wait for it on a mutex and a condition variable, and they always wait *detached*
// (GIL released, thread state detached), which is what keeps step 02's deadlock away on a
// GIL build and a stop-the-world pause from deadlocking on a free-threaded one.
// The protocol is model-checked: the line that implements each step of the model carries
// a marker comment, SPIN and the step's label.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "cell_common.hpp"
#include "compiler.hpp"
#include "errors.hpp"
#include "gil_state.hpp"
#include "gil_token.hpp"
#include "handles.hpp"

namespace gilonce {
namespace detail {

/// The synchronization core of `py_once_lock`, with the interpreter left out: a state
/// (empty, running, full), the thread running the initializer, a mutex and a condition
/// variable. `Hooks` says how a thread lets go of the interpreter before it may block and
/// takes it back after: `py_once_lock` passes `python_attachment` (PyEval_SaveThread /
/// PyEval_RestoreThread); tests/cpp/test_once_core_tsan.cpp passes a test double, so that
/// ThreadSanitizer checks this very code without libpython.
///
/// Hooks must provide `void detach() noexcept` and `void attach()` (which may end the
/// thread with a forced unwind, as PyEval_RestoreThread does to a daemon thread during
/// Py_Finalize on CPython 3.11-3.13). Every member below that takes hooks is entered and
/// left attached, and never blocks attached: the mutex is only ever taken detached, and no
/// one attaches or runs user code while holding it, so it never joins a cycle with the GIL
/// (or with a stop-the-world pause). Lock order: the mutex is a leaf.
///
/// Invariant of destruction: the mutex and the condition variable are destroyed only if no
/// thread can still use them (none waits, none has the cell claimed); otherwise they are
/// left as they are. A `static` cell is destroyed at process exit whatever its daemon threads
/// are doing, and glibc's `pthread_cond_destroy` waits for every waiter to leave: it would
/// wait for ever for a thread parked in `wait` (or, once woken, stopped for good in
/// `attach`). Left undestroyed, the pair holds nothing (no memory, no descriptor on glibc).
class once_core {
public:
    /// The three states; `state_` only moves empty -> running -> full, or running -> empty
    /// on failure (and full -> empty in `take`, by the cell's only user).
    static constexpr std::uint8_t empty = 0;    ///< no value, no initializer running
    static constexpr std::uint8_t running = 1;  ///< one thread's initializer is running
    static constexpr std::uint8_t full = 2;     ///< the value is published

    once_core() noexcept = default;
    once_core(const once_core&) = delete;
    once_core& operator=(const once_core&) = delete;
    /// Destroys the mutex and the condition variable unless a thread may still use them
    /// (see the invariant above). The mutex is only tried: held at fork() by a thread the
    /// child does not have, it stays locked in the child, which must still be able to exit.
    ~once_core() {
        if (!in_use_at_destruction()) sync_.destroy();
    }

    /// Whether the value is published. An acquire load: a caller that sees `full` also
    /// sees the value that was constructed before it was published. On x86-64 a plain load.
    bool is_full() const noexcept {
        return state_.load(std::memory_order_acquire) == full;  // SPIN: fast_check
    }

    /// Whether this OS thread is running this cell's initializer (a greenlet on the same
    /// thread is the same thread here). Relaxed is enough: only this thread ever writes its
    /// own key, and a thread always reads its own last write; another thread's key is
    /// never equal to ours.
    bool running_on_this_thread() const noexcept {
        return owner_.load(std::memory_order_relaxed) == this_thread_key();
    }

    /// What `wait_or_claim` found.
    enum class outcome {
        full,     ///< the value is there
        claimed,  ///< this thread must run the initializer, then `publish` or `reset`
        refused,  ///< another thread runs it, and `hooks.may_wait()` said it may never finish
    };

    // --8<-- [start:wait_or_claim]
    /// The slow path's entry: waits (detached) until the cell is full, or claims it.
    /// Requires: attached (hooks), and not `running_on_this_thread()` (that would wait for
    /// itself). Returns: attached, with what it found (see `outcome`).
    template <class Hooks>
    outcome wait_or_claim(Hooks& hooks) {
        hooks.detach();  // SPIN: detach
        outcome found = outcome::full;
        {
            std::unique_lock<std::mutex> lock(mutex());  // SPIN: lock
            for (;;) {
                const std::uint8_t seen = state_.load(std::memory_order_relaxed);  // under the mutex
                if (seen == full) {  // SPIN: see_full
                    break;
                } else if (seen == running) {  // SPIN: see_running
                    // (not in the model: during Py_Finalize the initializing thread is ended
                    // or parked when it wants the interpreter back, so it never publishes)
                    if (!hooks.may_wait()) {
                        found = outcome::refused;
                        break;
                    }
                    ++waiters_;  // counted under the mutex, for the destructor
                    changed().wait(lock);  // SPIN: wait
                    --waiters_;
                    // (a spurious wake-up only loops: the state is read again)
                } else {  // SPIN: see_empty
                    claim();  // SPIN: claim
                    found = outcome::claimed;
                    break;
                }
            }
        }  // SPIN: unlock
        // Unlocked before attaching: the mutex is never held attached.
        hooks.attach();  // SPIN: attach
        return found;
    }
    // --8<-- [end:wait_or_claim]

    /// Publishes the value: `construct()` (which must not throw and must not need the
    /// interpreter: it runs detached, under the mutex) builds it in place, then the state
    /// becomes full and every waiter wakes. Requires: attached, and this thread claimed the
    /// cell. Returns: attached.
    template <class Hooks, class Construct>
    void publish(Hooks& hooks, Construct&& construct) {
        hooks.detach();  // SPIN: detach
        {
            std::lock_guard<std::mutex> lock(mutex());  // SPIN: lock
            std::forward<Construct>(construct)();  // SPIN: store
            owner_.store(0, std::memory_order_relaxed);
            state_.store(full, std::memory_order_release);  // SPIN: store
            // (the value above, then `full`: a fast-path reader that sees `full` sees it)
            changed().notify_all();  // SPIN: notify_all
        }  // SPIN: unlock
        hooks.attach();  // SPIN: attach
    }

    /// The initializer failed: the cell is empty again and exactly one waiter wakes to
    /// retry. Requires: attached, and this thread claimed the cell. Returns: attached.
    template <class Hooks>
    void reset(Hooks& hooks) {
        hooks.detach();  // SPIN: detach
        reset_detached();
        hooks.attach();  // SPIN: attach
    }

    /// The same for a thread being torn down by a forced unwind (it is not attached and
    /// must not touch the interpreter): resets the cell if this thread still has it
    /// claimed, else (it was already published or reset) does nothing.
    void abandon() noexcept {
        if (running_on_this_thread()) reset_detached();
    }

    /// For `take`: empties a full cell. Requires: attached, and no other thread uses the
    /// cell (see py_once_lock::take). Returns: attached; true if the cell was full, in
    /// which case `move_out()` (nothrow, no interpreter: it runs detached under the mutex)
    /// was called before the state became empty.
    template <class Hooks, class MoveOut>
    bool empty_if_full(Hooks& hooks, MoveOut&& move_out) {
        hooks.detach();
        bool was_full = false;
        {
            std::lock_guard<std::mutex> lock(mutex());
            if (state_.load(std::memory_order_relaxed) == full) {
                std::forward<MoveOut>(move_out)();
                state_.store(empty, std::memory_order_relaxed);
                was_full = true;
            }
        }
        hooks.attach();
        return was_full;
    }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    // A key for the calling thread, never 0: the address of a thread-local, unique among
    // live threads. (Not PyThread_get_thread_ident: the core knows nothing of Python.)
    GILONCE_EXTENSION_PRIVATE static std::uintptr_t this_thread_key() noexcept {  // hidden: `key` is per extension
        static thread_local char key;
        return reinterpret_cast<std::uintptr_t>(&key);
    }
    // Requires: the mutex is held and the state is empty.
    void claim() noexcept {
        state_.store(running, std::memory_order_relaxed);
        owner_.store(this_thread_key(), std::memory_order_relaxed);
    }
    // Requires: detached; this thread claimed the cell.
    void reset_detached() noexcept {
        std::lock_guard<std::mutex> lock(mutex());  // SPIN: lock
        owner_.store(0, std::memory_order_relaxed);
        state_.store(empty, std::memory_order_relaxed);  // SPIN: reset
        changed().notify_one();  // SPIN: notify_one
    }  // SPIN: unlock
    // Whether a thread waits on the cell or has it claimed (or, the mutex being taken, is in
    // the middle of the protocol): then the pair must outlive the cell.
    bool in_use_at_destruction() noexcept {
        std::unique_lock<std::mutex> lock(mutex(), std::try_to_lock);
        return !lock.owns_lock() || waiters_ != 0 || state_.load(std::memory_order_relaxed) == running;
    }

    /// The mutex and the condition variable, destroyed only when the invariant allows it.
    union sync_storage {
        /// The two objects whose destruction the invariant governs.
        struct pair {
            std::mutex mutex;                 ///< guards state_, owner_ and waiters_ changes
            std::condition_variable changed;  ///< notified when state_ leaves `running`
        } objects;                            ///< the only member: constructed with the cell
        sync_storage() noexcept : objects() {}
        ~sync_storage() {}  // see destroy()
        /// Ends the pair's lifetime (the destructor alone never does).
        void destroy() noexcept { objects.~pair(); }
    };
    std::mutex& mutex() noexcept { return sync_.objects.mutex; }
    std::condition_variable& changed() noexcept { return sync_.objects.changed; }

    std::atomic<std::uint8_t> state_{empty};  // written under the mutex; read by the fast path
    std::atomic<std::uintptr_t> owner_{0};    // the claiming thread's key while running, else 0
    int waiters_ = 0;                         // threads inside changed().wait; under the mutex
    sync_storage sync_;
};

/// The real hooks: detaching is PyEval_SaveThread (the GIL is released; on a free-threaded
/// build the thread state is detached, so a stop-the-world pause does not wait for this
/// thread), attaching is PyEval_RestoreThread.
struct python_attachment {
    PyThreadState* saved = nullptr;  ///< this thread's state while it is detached
    bool in_main = false;            ///< whether that state is the main interpreter's
    /// Releases the GIL (detaches the thread state). Requires: attached.
    void detach() noexcept {
        in_main = PyInterpreterState_Get() == PyInterpreterState_Main();
        saved = PyEval_SaveThread();
    }
    /// Takes the GIL back (re-attaches). Not noexcept: CPython 3.11-3.13 ends a daemon
    /// thread here (pthread_exit) once Py_Finalize has started; that forced unwind must pass.
    void attach() { PyEval_RestoreThread(saved); }
    /// Whether this thread may wait for another thread's initializer. Not in the main
    /// interpreter once Py_Finalize has started (after atexit and the non-daemon threads):
    /// the only thread still running there is the finalizing one, and the initializer's
    /// thread is ended (3.11-3.13) or parked for ever (3.14) when it next wants the
    /// interpreter -- which may be never, and on 3.14 is never. Refusing is chosen over a
    /// wait that may not end. A sub-interpreter's threads run on until it is finalized, so
    /// they may wait. Safe detached (an atomic read).
    bool may_wait() const noexcept {
#if PY_VERSION_HEX >= 0x030D0000
        return !(in_main && Py_IsFinalizing());
#else
        return !(in_main && _Py_IsFinalizing());
#endif
    }
};

}  // namespace detail

/// An exactly-once cell: the first caller runs the initializer, every other caller waits
/// for it (detached from the interpreter) and gets the same value. Works on GIL builds and
/// on free-threaded (Py_GIL_DISABLED) builds.
///
/// Semantics (tested in tests/cpp/test_py_once_lock.cpp; the core under ThreadSanitizer in
/// tests/cpp/test_once_core_tsan.cpp):
/// - Requires an attached thread state (on a GIL build: the GIL is held), shown by a
///   `gil_token`, for every member.
/// - The initializer runs at most once per successful initialization: while it runs (and it
///   may release the GIL), other callers wait; when it succeeds, all of them get its value.
/// - Waiters block detached: with the GIL released (another thread can run Python code
///   meanwhile), and on a free-threaded build with the thread state detached. The
///   initializer itself runs attached, like any C API code.
/// - A failing initializer (a C++ exception, for `get_or_try_init` a `std::nullopt` or a
///   value with a Python exception set, or an empty handle) leaves the cell empty, its
///   failure propagates to its own caller only, and exactly one waiter wakes and runs *its*
///   initializer; the other waiters keep waiting for that one.
/// - Re-entrant initialization (the initializer, on its own OS thread, asks for this cell)
///   is an error naming the cell, not a self-deadlock. A greenlet is not a thread here: a
///   greenlet that switches away inside the initializer to another greenlet on the same
///   thread that asks for the cell gets the error too (waiting would block the only thread
///   that could finish the initializer).
/// - What a caller may NOT assume: that it cannot deadlock. The cell is a lock. If A's
///   initializer waits for cell B while B's initializer (on another thread) waits for cell
///   A, both threads wait forever, as with any two locks taken in opposite orders. The same
///   holds for an initializer that waits for another thread (joins it, waits for an event)
///   which asks for this cell. Keep initializers free of such waits, or order the cells.
///   The import system's per-module locks are such waits: an initializer that imports
///   module M waits for M's import lock while another thread imports M, and if M's code
///   asks for this cell, that thread waits for the initializer: both wait forever, with
///   nothing to tell (the import system sees only its own locks). Import before asking for
///   the cell, as the example does; the initializer then only uses what the import gave.
///   Nor that a waiter can be interrupted: it waits on a condition variable, so a
///   KeyboardInterrupt reaches a waiting main thread only once the initializer is done.
/// - fork(): a child forked while another thread runs the initializer finds the cell
///   `running` forever (no thread in the child will finish it), like a `std::mutex` held
///   at fork. A child forked before or after is fine.
/// - Not constant-initialized (`std::condition_variable` has no constexpr constructor in
///   libstdc++): a namespace-scope cell is built during static initialization; do not use
///   one from another translation unit's static initializer. A function-local `static`
///   (its constructor calls no Python), module state or an object member is fine.
/// - Destruction, and a thread ended by `pthread_exit` inside the initializer: as
///   `gil_once_cell` (the value is destroyed only by a thread attached to a live
///   interpreter, else leaked; the unwind calls no C API, resets the cell and wakes one
///   waiter).
/// - Process exit: a `static` cell is destroyed at exit, after Py_Finalize, whatever its
///   daemon threads are doing. If one of them is inside the initializer or waiting for it,
///   the destructor leaves the cell's mutex and condition variable undestroyed (and the value
///   slot empty, untouched), so exit finishes; the threads stay where they are until the
///   process ends. Nothing touches Python. A cell that is not `static` (module state, an
///   object) must not be destroyed while another thread uses it: its memory goes away. In
///   module state that means: a thread that uses the cell holds a reference to the module
///   meanwhile (a call from Python does; a native thread must take one), so that `m_free`
///   cannot run under it, even during Py_Finalize.
/// - During Py_Finalize, in the main interpreter, a caller never waits for another thread's
///   initializer: that thread is ended (3.11-3.13) or parked for ever (3.14) when it next
///   wants the interpreter, which may be never (on 3.14: never). The call fails instead
///   (`std::runtime_error`, or from `get_or_try_init` a `RuntimeError`, naming the cell),
///   and the cell stays as it is. A deliberate choice: on 3.11-3.13 such a wait could
///   sometimes end. Sub-interpreters' threads are not affected.
/// - Fast path on a full cell: one acquire load and a branch, inlined (on x86-64 a plain
///   load): no atomic read-modify-write, no lock, no thread-id lookup.
///
/// Example:
/// @code
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
/// @tparam T as for `gil_once_cell`: a C++ value, `gilonce::py_ref`, `pybind11::object` or
///         a raw pointer (not owned). It must be nothrow move constructible, and its move
///         constructor must not call the C API: the value is moved into the cell detached.
template <class T>
class py_once_lock {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "py_once_lock<T>: T is moved into the cell detached, under a mutex, and must not throw there");

public:
    /// An empty cell. `name` (a string literal) names the cell in error messages; null
    /// gives the default name.
    explicit py_once_lock(const char* name = "gilonce::py_once_lock") noexcept
        : core_(), name_(name != nullptr ? name : "gilonce::py_once_lock") {}
    py_once_lock(const py_once_lock&) = delete;
    py_once_lock& operator=(const py_once_lock&) = delete;
    /// Destroys the value if this thread is attached to a live interpreter, else leaks it.
    ~py_once_lock();

    /// The name given at construction.
    const char* name() const noexcept { return name_; }

    /// Requires: an attached thread state. Never blocks.
    /// Returns: the stored value, or null if the cell is empty or being initialized.
    const T* get(gil_token) const noexcept {
        return core_.is_full() ? &slot_.value : nullptr;  // SPIN: fast_check
    }

    /// Returns the stored value, first running `init()` (returning T) if no one has.
    /// Requires: an attached thread state. `init` runs attached and may release the GIL.
    /// Returns: a reference to the stored value, valid until the cell is destroyed or
    /// emptied by `take`/`clear`.
    /// Throws: whatever `init` throws (the cell stays empty; one waiter retries);
    /// `reentrant_init_error` naming the cell if `init`, on its own thread, asks for this
    /// cell; `empty_value_error` if `init` returns an empty handle (a Python exception it
    /// set stays set). Blocks, detached, while another thread's `init` runs.
    template <class F>
    const T& get_or_init(gil_token gil, F&& init) {
        if (core_.is_full()) return slot_.value;  // SPIN: fast_check
        return get_or_init_slow(gil, std::forward<F>(init));
    }

    /// C API flavour of `get_or_init`: `init()` returns `std::optional<T>`, and returns
    /// `std::nullopt` with a Python exception set to report failure.
    /// Requires: an attached thread state, and no Python exception set on entry.
    /// Returns: the stored value; or null with a Python exception set when `init` failed
    /// (its exception; a `SystemError` if it failed without setting one, set one and still
    /// returned a value, or returned an empty handle) or when the call is re-entrant (a
    /// `RuntimeError` naming the cell). On failure the cell stays empty and one waiter
    /// retries. C++ exceptions thrown by `init` propagate, as in `get_or_init`.
    template <class F>
    const T* get_or_try_init(gil_token gil, F&& init) {
        if (core_.is_full()) return &slot_.value;  // SPIN: fast_check
        return get_or_try_init_slow(gil, std::forward<F>(init));
    }

    /// Empties the cell and hands the value to the caller (an empty or initializing cell
    /// is left as it is: nullopt). Unlike every other member this one is not thread-safe:
    /// Requires: an attached thread state; no other thread uses the cell during the call
    /// (no `get*` racing with it: a fast path could read the value while it is moved out);
    /// no reference or pointer the cell handed out is still in use (the tag says so).
    std::optional<T> take(gil_token, invalidates_references_t);

    /// For a cell in module state or in an object: call it from `m_traverse`/`tp_traverse`.
    /// Visits the stored `py_ref`/`pybind11::object` (a value still being computed is not
    /// in the cell yet). Requires: called by the garbage collector (attached; on a
    /// free-threaded build the world is stopped), with no `take`/`clear` racing.
    /// Returns: 0, or the first non-zero result of `visit`.
    int traverse(visitproc visit, void* arg) const {
        return core_.is_full() ? detail::traverse(slot_.value, visit, arg) : 0;
    }

    /// For a cell in module state or in an object: call it from `m_clear`/`tp_clear`.
    /// Empties the cell and releases the value; `take`'s rules apply.
    /// Requires: an attached thread state. May run Python code (the value's finalizer).
    void clear(gil_token gil, invalidates_references_t tag) {
        std::optional<T> value = take(gil, tag);
        if (value) detail::release_now(*value);
    }

    // ---------------------------------------------------------------------------------
    // Implementation details follow.
private:
    std::string message(const char* what) const { return std::string("py_once_lock '") + name_ + "': " + what; }
    static constexpr const char* reentry_text =
        "re-entrant initialization (its initializer asked, on its own thread, for the value "
        "it is computing: waiting would deadlock)";
    static constexpr const char* empty_text = "initializer returned an empty handle";
    static constexpr const char* finalizing_text =
        "another thread is running its initializer while the interpreter is finalizing; that thread "
        "is ended or parked when it next wants the interpreter, so waiting might never end";

    template <class F>
    GILONCE_COLD const T& get_or_init_slow(gil_token gil, F&& init);
    template <class F>
    GILONCE_COLD const T* get_or_try_init_slow(gil_token gil, F&& init);
    // Publishes `value` (moved into the slot, detached, under the core's mutex).
    void publish(detail::python_attachment& hooks, T& value) {
        core_.publish(hooks, [&]() noexcept { ::new (static_cast<void*>(&slot_.value)) T(std::move(value)); });
    }

    union slot {
        slot() noexcept : unused() {}
        ~slot() {}  // the cell decides when (and whether) the value is destroyed
        char unused;
        T value;
    };

    // The value first: its address is the cell's, so `get` needs no address arithmetic.
    slot slot_;
    detail::once_core core_;
    const char* name_;
};

template <class T>
py_once_lock<T>::~py_once_lock() {
    if (!core_.is_full()) return;
    if constexpr (!std::is_trivially_destructible_v<T>) {
        // As gil_once_cell: the thread state, not Py_IsInitialized() (already false while
        // Py_FinalizeEx clears modules, when module state must still release its objects).
        if (detail::this_thread_holds_the_gil()) slot_.value.~T();
        // else: leaked on purpose.
    }
}

template <class T>
std::optional<T> py_once_lock<T>::take(gil_token, invalidates_references_t) {
    std::optional<T> out;
    detail::python_attachment hooks;
    core_.empty_if_full(hooks, [&]() noexcept {
        out.emplace(std::move(slot_.value));
        slot_.value.~T();  // a moved-from handle: no C API call
    });
    return out;
}

// Both slow paths: everything from the wait to the final attach is inside `call_user_code`,
// so that a thread torn down by pthread_exit anywhere in it (while attaching after the
// wait, inside the initializer, or while attaching after a reset or a publish) calls no C
// API: `abandon` leaks what the thread holds and, if the cell is still claimed by it,
// resets it (detached, as the thread already is) and wakes one waiter.
// --8<-- [start:get_or_init_slow]
template <class T>
template <class F>
const T& py_once_lock<T>::get_or_init_slow(gil_token, F&& init) {
    if (core_.running_on_this_thread()) throw reentrant_init_error(message(reentry_text));  // SPIN: reentry_check
    detail::python_attachment hooks;
    std::optional<T> value;
    return detail::call_user_code(
        [&]() -> const T& {
            const auto found = core_.wait_or_claim(hooks);
            if (found == detail::once_core::outcome::full) return slot_.value;  // another thread's value
            if (found == detail::once_core::outcome::refused) throw std::runtime_error(message(finalizing_text));
            // A C++ exception resets the cell in the handler, inside this guard.
            value.emplace(detail::call_cleaning_up_on_exception(std::forward<F>(init), [&] { core_.reset(hooks); }));  // SPIN: run_init
            if (detail::is_empty(*value)) {
                core_.reset(hooks);
                throw empty_value_error(message(empty_text));
            }
            publish(hooks, *value);
            return slot_.value;
        },
        [&]() noexcept {
            if (value) detail::abandon(*value);
            core_.abandon();
        });
}
// --8<-- [end:get_or_init_slow]

template <class T>
template <class F>
const T* py_once_lock<T>::get_or_try_init_slow(gil_token, F&& init) {
    if (core_.running_on_this_thread()) {  // SPIN: reentry_check
        PyErr_SetString(PyExc_RuntimeError, message(reentry_text).c_str());
        return nullptr;
    }
    detail::python_attachment hooks;
    std::optional<T> value;
    return detail::call_user_code(
        [&]() -> const T* {
            const auto found = core_.wait_or_claim(hooks);
            if (found == detail::once_core::outcome::full) return &slot_.value;
            if (found == detail::once_core::outcome::refused) {
                PyErr_SetString(PyExc_RuntimeError, message(finalizing_text).c_str());
                return nullptr;
            }
            std::optional<T> made = detail::call_cleaning_up_on_exception(
                [&] { return std::optional<T>(std::forward<F>(init)()); }, [&] { core_.reset(hooks); });  // SPIN: run_init
            if (made) value.emplace(std::move(*made));  // out of this frame: `abandon` sees it
            if (!value) {
                core_.reset(hooks);  // the Python exception stays on the thread state meanwhile
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_SystemError, message("initializer failed without setting an exception").c_str());
                return nullptr;
            }
            if (PyErr_Occurred()) {  // a half-failed initializer: discard its value, report the error
                core_.reset(hooks);
                detail::release_now(*value);  // after the reset: a __del__ that asks for the cell may initialize it
                raise_from_current(PyExc_SystemError, message("initializer returned a value with an exception set").c_str());
                return nullptr;
            }
            if (detail::is_empty(*value)) {
                core_.reset(hooks);
                PyErr_SetString(PyExc_SystemError, message(empty_text).c_str());
                return nullptr;
            }
            publish(hooks, *value);
            return &slot_.value;
        },
        [&]() noexcept {
            if (value) detail::abandon(*value);
            core_.abandon();
        });
}

}  // namespace gilonce
