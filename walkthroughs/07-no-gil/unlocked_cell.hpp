// Step 07's naive form: gil_once_cell's protocol (reference/include/gilonce/gil_once_cell.hpp)
// with its one lock, the GIL, taken away, as on a free-threaded build. Each step carries the
// label of models/gil_cell_without_gil.pml it stands for (`// SPIN:`), and `step` runs just
// before it, so that a scenario can replay SPIN's counterexample, read from its trail, with
// real threads (trail_replay.hpp).
#pragma once

#include <functional>
#include <utility>

namespace step07 {

// --8<-- [start:unlocked_cell]
// BAD without a GIL: the re-check and the store are two steps, and another thread can run
// between them. gil_once_cell is sound only because the GIL makes them one.
template <class T>
class gil_protocol_without_gil {
public:
    // Runs just before each step, with its name: where a replay orders the threads.
    std::function<void(const char* name)> step = [](const char*) {};

    template <class F>
    T get_or_init(F&& init) {
        step("fast_check");
        if (full_) {  // SPIN: fast_check
            step("py_returned");
            return value_;
        }
        step("run_init");
        T made = init();  // SPIN: run_init
        step("store_or_release");
        if (!full_) {  // SPIN: store_or_release
            step("store:value");
            value_ = std::move(made);  // SPIN: store
            ++stores_;
            step("store:full_");
            full_ = true;  // SPIN: store
        }  // else: another initializer won; `made` is dropped
        step("py_returned");
        return value_;  // SPIN: py_returned
    }

    int stores() const noexcept { return stores_; }
    T value() const { return value_; }

private:
    bool full_ = false;  // "written and read only under the GIL": here, under nothing
    T value_{};
    int stores_ = 0;
};
// --8<-- [end:unlocked_cell]

}  // namespace step07
