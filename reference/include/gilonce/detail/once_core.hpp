// gilonce/detail/once_core.hpp: the synchronization core of `py_once_lock`, with the
// interpreter left out: a state (empty, running, full), the claiming thread, a mutex and a
// condition variable. `Hooks` says how a thread lets go of the interpreter before it may
// block (`detach() noexcept`) and takes it back after (`attach()`, which may end the thread
// with a forced unwind). `py_once_lock` passes PyEval_SaveThread / PyEval_RestoreThread;
// a ThreadSanitizer test passes a double, so this very code is checked without libpython.
//
// Invariant of blocking: every member that takes hooks is entered and left attached and
// never blocks attached. The mutex is taken only detached, and no thread attaches or runs
// user code while it holds it: the mutex is a leaf, and never joins a cycle with the GIL (or
// a free-threaded build's stop-the-world pause).
// Invariant of destruction: the mutex and the condition variable are destroyed only if no
// thread can still use them (none waits, none has the cell claimed); otherwise they are left
// undestroyed (they hold no resources on glibc). A `static` cell is destroyed at exit
// whatever its daemon threads do, and `pthread_cond_destroy` would wait for ever for one
// parked in `wait`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>

#include "build.hpp"

namespace gilonce::detail {

class once_core {
public:
    /// `state_` moves only empty -> running -> full, or running -> empty on failure (and
    /// full -> empty in `empty_if_full`, by the cell's only user).
    static constexpr std::uint8_t empty = 0, running = 1, full = 2;

    once_core() noexcept = default;
    once_core(const once_core&) = delete;
    once_core& operator=(const once_core&) = delete;
    /// The mutex is only tried: held at fork() by a thread the child lacks, it stays locked
    /// there, and the child must still be able to exit.
    ~once_core() {
        std::unique_lock<std::mutex> lock(sync_.pair.mutex, std::try_to_lock);
        const bool in_use = !lock.owns_lock() || waiters_ != 0 || state_.load(std::memory_order_relaxed) == running;
        if (lock.owns_lock()) lock.unlock();
        if (!in_use) sync_.pair.~sync_pair();
    }

    /// Whether the value is published. An acquire load (on x86-64 a plain one): a reader that
    /// sees `full` sees the value constructed before it.
    bool is_full() const noexcept { return state_.load(std::memory_order_acquire) == full; }

    /// Whether this OS thread has the cell claimed (a greenlet on it is the same thread).
    /// Relaxed: only this thread writes its own id, and it reads its own last write; another
    /// thread's id, or none, never equals it.
    bool running_on_this_thread() const noexcept {
        return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
    }

    enum class outcome {
        full,     ///< the value is there
        claimed,  ///< this thread must run the initializer, then `publish` or `reset`
        refused,  ///< another thread runs it, and `hooks.may_wait()` said it may never finish
    };

    /// The slow path's entry: waits, detached, until the cell is full, or claims it.
    /// Requires: attached, and not `running_on_this_thread()`. Returns: attached.
    template <class Hooks>
    outcome wait_or_claim(Hooks& hooks) {
        hooks.detach();
        std::unique_lock<std::mutex> lock(mutex());
        outcome found = outcome::full;
        for (;;) {
            const std::uint8_t seen = state_.load(std::memory_order_relaxed);  // under the mutex
            if (seen == full) break;
            if (seen == running) {
                if (!hooks.may_wait()) {
                    found = outcome::refused;
                    break;
                }
                ++waiters_;  // counted for the destructor
                changed().wait(lock);  // a spurious wake-up only reads the state again
                --waiters_;
                continue;
            }
            state_.store(running, std::memory_order_relaxed);  // empty: this thread claims it
            owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
            found = outcome::claimed;
            break;
        }
        lock.unlock();
        hooks.attach();  // after unlocking: the mutex is never held attached
        return found;
    }

    /// Publishes: `construct()` (nothrow, no interpreter: it runs detached, under the mutex)
    /// builds the value, then the state becomes full and every waiter wakes.
    /// Requires: attached; this thread claimed the cell. Returns: attached.
    template <class Hooks, class Construct>
    void publish(Hooks& hooks, Construct&& construct) {
        hooks.detach();
        std::unique_lock<std::mutex> lock(mutex());
        construct();
        owner_.store(std::thread::id(), std::memory_order_relaxed);
        state_.store(full, std::memory_order_release);  // after the value: see is_full
        changed().notify_all();
        lock.unlock();
        hooks.attach();
    }

    /// The initializer failed: the cell is empty again and one waiter wakes to retry.
    /// Requires: attached; this thread claimed the cell. Returns: attached.
    template <class Hooks>
    void reset(Hooks& hooks) {
        hooks.detach();
        reset_claim();
        hooks.attach();
    }

    /// For a thread torn down by a forced unwind (not attached): gives up the cell if this
    /// thread still has it claimed, else (published or reset already) does nothing.
    void abandon() noexcept {
        if (running_on_this_thread()) reset_claim();
    }

    /// Empties a full cell, calling `move_out()` (nothrow, no interpreter) first. Requires:
    /// attached; no other thread uses the cell. Returns: attached; whether it was full.
    template <class Hooks, class MoveOut>
    bool empty_if_full(Hooks& hooks, MoveOut&& move_out) {
        hooks.detach();
        bool was_full = false;
        {
            std::lock_guard<std::mutex> lock(mutex());
            if ((was_full = state_.load(std::memory_order_relaxed) == full)) {
                move_out();
                state_.store(empty, std::memory_order_relaxed);
            }
        }
        hooks.attach();
        return was_full;
    }

private:
    void reset_claim() noexcept {  // Requires: detached (or torn down); this thread's claim.
        std::unique_lock<std::mutex> lock(mutex());
        owner_.store(std::thread::id(), std::memory_order_relaxed);
        state_.store(empty, std::memory_order_relaxed);
        changed().notify_one();
        lock.unlock();
    }

    struct sync_pair {
        std::mutex mutex;                 // guards changes of state_, owner_, waiters_
        std::condition_variable changed;  // notified when state_ leaves `running`
    };
    union sync_storage {  // destroyed only as the invariant allows (see ~once_core)
        sync_pair pair;
        sync_storage() noexcept : pair() {}
        ~sync_storage() {}
    };
    std::mutex& mutex() noexcept { return sync_.pair.mutex; }
    std::condition_variable& changed() noexcept { return sync_.pair.changed; }

    std::atomic<std::uint8_t> state_{empty};  // written under the mutex; read by the fast path
    // The claiming thread's id while running, else none. The thread's own id, not a key of
    // this copy of the headers: two extensions built from them agree on it (RTLD_GLOBAL can
    // bind one's calls to the other's functions). A claimer torn down by a forced unwind
    // gives it up (`abandon`); one whose stack is dropped unwound (a greenlet suspended
    // when its thread ends) does not, and its id may be reused (see py_once_lock.hpp).
    std::atomic<std::thread::id> owner_{std::thread::id()};
    int waiters_ = 0;                         // threads inside changed().wait; under the mutex
    sync_storage sync_;
};

}  // namespace gilonce::detail
