// harness/event.cpp: one-shot events (see event.hpp).
#include "harness/event.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
    if (Py_IsInitialized() && PyGILState_Check())
        throw std::logic_error("harness::event '" + name_ + "': wait() called with the GIL held");
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, bound, [&] { return set_; }))
        throw std::runtime_error("harness::event '" + name_ + "' was never set (waited " +
                                 std::to_string(bound.count()) + " ms)");
}

}  // namespace harness
