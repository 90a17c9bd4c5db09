// Step 07: replays an interleaving read from a file, step by step, on real threads. The file
// (gil_cell_without_gil.steps, written from SPIN's trail by trail_steps.py) lists "number
// thread step" lines; each thread calls `step(name)` just before each step of its code, and
// waits there until that step is the trail's next one. A thread whose steps differ from its
// steps in the trail ends the replay with a message naming both, instead of being forced; a
// malformed file is refused when it is read, naming the line.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/trace.hpp"

namespace step07 {

struct trail_step {
    int number;          // the step's number in SPIN's trail
    std::string thread;  // "A" or "B"
    std::string name;    // the code step: fast_check, run_init, store_or_release, ...
};

/// The steps of a .steps text: one "number thread name" per line; '#' lines are comments.
/// Throws std::invalid_argument naming the line for anything else: a missing or extra
/// field, a thread other than A or B, a step unlocked_cell.hpp does not have, numbers that
/// do not increase, or no step at all. (That the file is SPIN's whole trail, in order, is
/// checked against a fresh SPIN run by trail_steps.py --check, a `models` test.)
inline std::vector<trail_step> parse_trail(const std::string& text) {
    static const char* const known[] = {"fast_check", "run_init", "store_or_release",
                                        "store:value", "store:full_", "py_returned"};
    std::vector<trail_step> steps;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        trail_step s{};
        std::string extra;
        if (!(fields >> s.number >> s.thread >> s.name) || (fields >> extra))
            throw std::invalid_argument("trail line is not \"number thread step\": " + line);
        if (s.thread != "A" && s.thread != "B")
            throw std::invalid_argument("trail line names a thread other than A or B: " + line);
        bool is_known = false;
        for (const char* k : known) is_known = is_known || s.name == k;
        if (!is_known) throw std::invalid_argument("trail line names a step unlocked_cell.hpp does not have: " + line);
        if (!steps.empty() && s.number <= steps.back().number)
            throw std::invalid_argument("trail line does not follow the one before it: " + line);
        steps.push_back(s);
    }
    if (steps.empty()) throw std::invalid_argument("the trail has no step");
    return steps;
}

/// Orders threads by a trail. Requires: the calling threads do not hold the GIL.
class trail_replay {
public:
    explicit trail_replay(std::vector<trail_step> steps) : steps_(std::move(steps)) {}

    /// Called just before the code step `name` on the calling thread: ends this thread's
    /// previous step, then waits until `name` is the trail's next step and it is this
    /// thread's. After the trail's last step, or once the replay diverged, runs freely.
    void step(const std::string& thread, const std::string& name) {
        std::unique_lock<std::mutex> lock(mutex_);
        end_step(thread);
        // Bounded well inside the watchdog's deadline, so that a stuck replay is reported
        // by its own message rather than as a deadlock of the scenario.
        const bool turn = changed_.wait_for(lock, std::chrono::seconds(3), [&] {
            return !diverged_.empty() || next_ == steps_.size() || (running_.empty() && steps_[next_].thread == thread);
        });
        if (!turn)
            throw std::runtime_error("trail replay: " + thread + " waited 3 s before " + name + " for trail step " +
                                     std::to_string(steps_[next_].number) + " (" + steps_[next_].thread + " " +
                                     steps_[next_].name + ")");
        if (!diverged_.empty() || next_ == steps_.size()) return;
        const trail_step& expected = steps_[next_];
        if (expected.name != name) {
            diverged_ = thread + " reached " + name + " where the trail has " + expected.name + " (trail step " +
                        std::to_string(expected.number) + ")";
        } else {
            // A step that reads or writes the cell is drawn on the cell's own lifeline.
            const std::string what = "trail step " + std::to_string(expected.number) + ": " + name;
            if (name == "run_init" || name == "py_returned")
                harness::note(what);
            else
                harness::note_on("the cell (no GIL)", what);
            ++next_;
            ++replayed_;
            running_ = thread;
        }
        changed_.notify_all();
    }

    /// Called when the thread's code returns: ends its last step. A thread that returns
    /// while the trail still has steps of its own diverged.
    void done(const std::string& thread) {
        std::lock_guard<std::mutex> lock(mutex_);
        end_step(thread);
        for (std::size_t i = next_; i < steps_.size() && diverged_.empty(); ++i)
            if (steps_[i].thread == thread)
                diverged_ = thread + " returned before trail step " + std::to_string(steps_[i].number);
        changed_.notify_all();
    }

    /// Why the code left the trail, or "" if every step came in the trail's order.
    std::string diverged() const {
        std::lock_guard<std::mutex> lock(mutex_);
        if (diverged_.empty() && next_ != steps_.size()) return "the trail's steps were not all reached";
        return diverged_;
    }
    /// How many of the trail's steps ran in its order.
    std::size_t replayed() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return replayed_;
    }

private:
    void end_step(const std::string& thread) {  // Requires: mutex_ held.
        if (running_ != thread) return;
        running_.clear();
        changed_.notify_all();  // the next step's thread may go
    }

    std::vector<trail_step> steps_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t next_ = 0;     // the trail's next step not yet begun
    std::size_t replayed_ = 0;
    std::string running_;      // the thread inside a step of the trail, if any
    std::string diverged_;     // why the code left the trail, once it has
};

}  // namespace step07
