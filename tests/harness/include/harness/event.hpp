// harness/event.hpp: one-shot events that order threads without sleeping.
//
// "Thread B starts only after thread A has released the GIL" is written as A setting an
// event and B waiting for it. Waits are bounded so that a broken scenario fails with a
// message naming the event instead of hanging the test run; the bound is never what a
// scenario relies on.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

namespace harness {

class event {
public:
    explicit event(std::string name) : name_(std::move(name)) {}
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    /// Wakes every waiter, now and later.
    void set();
    bool is_set() const;
    /// Blocks until the event is set.
    /// Requires: the GIL is NOT held by the caller (a waiter holding the GIL would stop
    /// the thread that sets the event). Throws std::logic_error if it is.
    /// Throws std::runtime_error naming the event if it is not set within `bound`.
    void wait(std::chrono::milliseconds bound = std::chrono::seconds(30)) const;
    /// Blocks until the event is set, while the caller holds the GIL of its *own*
    /// interpreter (Python 3.12+, an own-GIL sub-interpreter): the thread that sets the
    /// event holds another GIL, which this wait does not stop. It is how a scenario shows
    /// two interpreters running Python code at the same moment.
    /// Throws std::runtime_error naming the event if it is not set within `bound`.
    void wait_holding_own_gil(std::chrono::milliseconds bound = std::chrono::seconds(30)) const;
    const std::string& name() const noexcept { return name_; }

private:
    void wait_for_set(std::chrono::milliseconds bound) const;
    std::string name_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    bool set_ = false;
};

}  // namespace harness
