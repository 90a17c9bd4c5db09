// harness/event.cpp: one-shot events (see event.hpp).
#include "harness/event.hpp"

#include <gilonce/detail/python.hpp>

#include <stdexcept>

#include "harness/trace.hpp"

namespace harness {

void event::set() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        set_ = true;
    }
    note("sets event '" + name_ + "'");
    changed_.notify_all();
}

bool event::is_set() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return set_;
}

void event::wait(std::chrono::milliseconds bound) const {
    // Not PyGILState_Check(): once a sub-interpreter has existed it answers 1 on every thread.
    if (gilonce::detail::this_thread_holds_the_gil())
        throw std::logic_error("harness::event '" + name_ + "': wait() called with the GIL held");
    wait_for_set(bound);
}

void event::wait_holding_own_gil(std::chrono::milliseconds bound) const { wait_for_set(bound); }

void event::wait_for_set(std::chrono::milliseconds bound) const {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, bound, [&] { return set_; }))
        throw std::runtime_error("harness::event '" + name_ + "' was never set (waited " +
                                 std::to_string(bound.count()) + " ms)");
}

}  // namespace harness
