// stress/crew.hpp: the same N threads for every round, each with its own Python thread
// state, released together through a start gate they wait at without the GIL.
//
// A first-use race needs every thread at the starting line before any of them asks for
// the value, and a waiter holding the GIL would stop the others from arriving: the gate
// is a C++ barrier, waited on with the GIL released, and the GIL is taken only after it.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilonce/gil_token.hpp>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stress {

/// The job of one round: runs on every thread of the crew, with the GIL held.
/// `index` is the thread's number, 0 to N-1.
using job = std::function<void(int index, gilonce::gil_token gil)>;

class crew {
public:
    /// Starts `size` threads, idle until `run`. Requires: the interpreter is initialized.
    explicit crew(int size) : size_(size) {
        for (int i = 0; i < size; ++i) threads_.emplace_back([this, i] { serve(i); });
    }
    crew(const crew&) = delete;
    crew& operator=(const crew&) = delete;
    /// Stops and joins every thread. Requires: the GIL is held (released while joining,
    /// since each thread takes it once more to delete its thread state).
    ~crew() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        PyThreadState* saved = PyEval_SaveThread();
        for (auto& t : threads_) t.join();
        PyEval_RestoreThread(saved);
    }

    /// Runs `work` once on every thread, all starting at the gate together.
    /// Requires: the GIL is held; it is released until every thread has finished. No bound
    /// on the wait: a hang is the watchdog's to report (watchdog.hpp).
    /// Returns: what the threads threw, one line each ("thread 3: ...").
    std::vector<std::string> run(const job& work) {
        PyThreadState* saved = PyEval_SaveThread();
        std::vector<std::string> errors;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            work_ = &work;
            finished_ = 0;
            errors_.clear();
            ++round_;
            wake_.notify_all();
            done_.wait(lock, [&] { return finished_ == size_; });
            errors.swap(errors_);
        }
        PyEval_RestoreThread(saved);
        return errors;
    }

private:
    // One thread's life: a thread state of its own, then one job per round.
    void serve(int index) {
        PyGILState_STATE state = PyGILState_Ensure();
        PyThreadState* mine = PyEval_SaveThread();
        std::uint64_t seen = 0;
        for (;;) {
            const job* work = nullptr;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || round_ != seen; });
                if (stopping_) break;
                seen = round_;
                work = work_;
            }
            arrive_at_gate();  // without the GIL: the others must be able to arrive too
            PyEval_RestoreThread(mine);
            std::string error;
            try {
                (*work)(index, gilonce::gil_token::assume_held());
            } catch (const std::exception& e) {
                error = "thread " + std::to_string(index) + ": " + e.what();
            } catch (...) {
                error = "thread " + std::to_string(index) + ": unknown exception";
            }
            PyEval_SaveThread();
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error.empty()) errors_.push_back(error);
            if (++finished_ == size_) done_.notify_all();
        }
        PyEval_RestoreThread(mine);
        PyGILState_Release(state);
    }

    // A reusable barrier: the last of `size_` threads to arrive opens it for all of them.
    void arrive_at_gate() {
        std::unique_lock<std::mutex> lock(gate_mutex_);
        const std::uint64_t generation = gate_generation_;
        if (++gate_arrived_ == size_) {
            gate_arrived_ = 0;
            ++gate_generation_;
            gate_open_.notify_all();
        } else {
            gate_open_.wait(lock, [&] { return gate_generation_ != generation; });
        }
    }

    const int size_;
    std::vector<std::thread> threads_;
    std::mutex mutex_;                  // guards the fields down to errors_
    std::condition_variable wake_;      // a new round, or stop
    std::condition_variable done_;      // every thread finished the round
    const job* work_ = nullptr;
    std::uint64_t round_ = 0;
    int finished_ = 0;
    bool stopping_ = false;
    std::vector<std::string> errors_;
    std::mutex gate_mutex_;
    std::condition_variable gate_open_;
    int gate_arrived_ = 0;
    std::uint64_t gate_generation_ = 0;
};

}  // namespace stress
