// Step 07's exactly-once cell in small form: a state, a mutex and a condition variable. The
// first caller runs the initializer; every other caller waits for it *detached* (the GIL
// released, its thread state saved), so the wait never holds the GIL on a GIL build and
// never holds up a stop-the-world pause on a free-threaded one. The reference header,
// gilonce/py_once_lock.hpp, is this algorithm plus what the contract below leaves out.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

#include <gilonce/gil_token.hpp>

namespace step07 {

// --8<-- [start:minimal_once_cell]
/// The first caller runs `init`; the others wait, detached, and get the same value.
/// Requires: the GIL is held (the token). Returns: the value, for the cell's lifetime.
/// Throws: what `init` throws; the cell is then empty again and one waiter runs its own.
/// Does NOT handle: re-entry (an `init` asking for its own cell waits for itself forever),
/// nor two cells whose initializers ask for each other from two threads (both wait, detached,
/// forever: a lock-order cycle the GIL cannot break); fork() while `init` runs; a `static`
/// cell destroyed at exit while a thread waits on it; Py_Finalize ending the thread that
/// runs `init`; a thread ended inside `init` (pthread_exit); greenlets; more than one
/// interpreter. A waiter cannot be interrupted (KeyboardInterrupt waits for `init`).
/// A caller may NOT assume the GIL is kept: every slow-path call releases it, the first
/// caller's included, so borrowed references may not survive the call. Destroy it with the
/// GIL held.
template <class T>
class minimal_once_cell {
public:
    template <class F>
    const T& get_or_init(gilonce::gil_token, F&& init) {
        if (state_.load(std::memory_order_acquire) == full) return *value_;  // fast path
        if (!wait_or_claim()) return *value_;  // full: another thread's value
        try {
            value_.emplace(init());  // attached: it may call Python and release the GIL
        } catch (...) {
            settle(empty);  // wakes one waiter, which claims the cell and runs its own
            throw;
        }
        settle(full);  // wakes every waiter
        return *value_;
    }

private:
    enum : std::uint8_t { empty, running, full };

    // Waits, detached, while another thread runs its initializer. Returns: whether this
    // thread claimed the cell (it was empty), else it is full.
    bool wait_or_claim() {
        PyThreadState* saved = PyEval_SaveThread();  // detach before the mutex can block
        std::unique_lock<std::mutex> lock(mutex_);
        while (state_.load(std::memory_order_relaxed) == running) changed_.wait(lock);
        const bool claimed = state_.load(std::memory_order_relaxed) == empty;
        if (claimed) state_.store(running, std::memory_order_relaxed);
        lock.unlock();
        PyEval_RestoreThread(saved);  // attach after unlocking: the mutex is never held attached
        return claimed;
    }

    // The claimer's end: full (the value is in) or empty (it failed), under the mutex.
    void settle(std::uint8_t to) {
        PyThreadState* saved = PyEval_SaveThread();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            state_.store(to, std::memory_order_release);  // after the value: see the fast path
            if (to == full) changed_.notify_all();
            else changed_.notify_one();
        }
        PyEval_RestoreThread(saved);
    }

    std::atomic<std::uint8_t> state_{empty};  // changed under mutex_; read by the fast path
    std::optional<T> value_;                  // written once, by the claimer, before `full`
    std::mutex mutex_;
    std::condition_variable changed_;  // notified when state_ leaves `running`
};
// --8<-- [end:minimal_once_cell]

}  // namespace step07
