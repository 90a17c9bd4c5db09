// stress/watchdog.hpp: a hang is reported, never waited out.
//
// A thread that touches no Python state watches the rounds go by. If one round does not
// finish within its bound, it names that round on stderr and ends the process with exit
// status 3: a deadlocked first use shows up as "hung in round R", not as a stuck run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace stress {

/// Exit status of a run that hung.
inline constexpr int exit_hung = 3;

class watchdog {
public:
    explicit watchdog(std::chrono::seconds bound) : bound_(bound), thread_([this] { watch(); }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }

    /// `what` (a literal: "cell", "shutdown") starts, at round `round` (1-based; 0 for a
    /// step that is not a round): its bound starts now.
    void step(const char* what, long round = 0) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            what_ = what;
            round_ = round;
            ++ticks_;
        }
        changed_.notify_all();
    }

private:
    void watch() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stopping_) {
            const unsigned long seen = ticks_;
            if (!changed_.wait_for(lock, bound_, [&] { return stopping_ || ticks_ != seen; })) {
                // Straight to stderr and out: the hung threads may hold any lock but this one.
                const long long bound = static_cast<long long>(bound_.count());
                if (round_ > 0)
                    std::fprintf(stderr, "stress_first_use: HUNG: %s round %ld did not finish within %lld s\n", what_,
                                 round_, bound);
                else
                    std::fprintf(stderr, "stress_first_use: HUNG: %s did not finish within %lld s\n", what_, bound);
                std::fflush(stderr);
                std::_Exit(exit_hung);
            }
        }
    }

    const std::chrono::seconds bound_;
    std::mutex mutex_;
    std::condition_variable changed_;
    const char* what_ = "start-up";
    long round_ = 0;
    unsigned long ticks_ = 0;
    bool stopping_ = false;
    std::thread thread_;  // last: starts after every field it reads
};

}  // namespace stress
