// py_once_lock's synchronization core (gilonce::detail::once_core: the state, the owner, the
// mutex and the condition variable), under ThreadSanitizer, with the interpreter replaced
// by a test double: a std::mutex stands for the GIL, and "detach"/"attach" unlock and lock
// it. This binary links no libpython (an uninstrumented libpython makes TSan report noise),
// so the tsan preset can check the very code py_once_lock runs: publication of the value,
// the reset after a failure, the forced-unwind reset. Catch2 assertions are made on the
// main thread only (Catch2 v2 is not thread-safe); the threads record what they saw.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <gilonce/detail/once_core.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// Counts arrivals; `wait_for(n)` returns once n have arrived.
class latch {
public:
    void arrive() {
        std::lock_guard<std::mutex> lock(mutex_);
        ++count_;
        changed_.notify_all();
    }
    void wait_for(int n) {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return count_ >= n; });
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int count_ = 0;
};

// The test double of the interpreter: one "GIL", and a count of the threads that let go
// of it inside the core (each `detach`).
struct fake_interpreter {
    std::mutex gil;
    latch detaches;
};

// once_core's Hooks, on the double.
struct fake_attachment {
    fake_interpreter* interpreter;
    void detach() noexcept {
        interpreter->gil.unlock();
        interpreter->detaches.arrive();
    }
    void attach() { interpreter->gil.lock(); }
    bool may_wait() const noexcept { return true; }  // the double never finalizes
};

// A cell on the core, as py_once_lock builds one (the value is published by the core).
struct fake_cell {
    gilonce::detail::once_core core;
    std::string value;  // constructed once, before `full` is published

    // py_once_lock::get, on the double: never blocks.
    const std::string* get() const noexcept { return core.is_full() ? &value : nullptr; }

    // py_once_lock::get_or_init's slow path, on the double. `init` runs "attached".
    template <class Init>
    const std::string& get_or_init(fake_attachment& hooks, Init&& init) {
        if (core.is_full()) return value;  // the fast path: an acquire load
        if (core.running_on_this_thread()) throw std::logic_error("re-entrant");
        if (core.wait_or_claim(hooks) == gilonce::detail::once_core::outcome::full) return value;
        std::string made;
        try {
            made = init();
        } catch (...) {
            core.reset(hooks);
            throw;
        }
        core.publish(hooks, [&]() noexcept { value = std::move(made); });
        return value;
    }
};

// Runs `body(i, hooks)` on n threads, each "attached" (holding the fake GIL) throughout,
// except where the core or the body lets go of it.
template <class Body>
void run_attached(fake_interpreter& interpreter, int n, Body body) {
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            fake_attachment hooks{&interpreter};
            interpreter.gil.lock();
            body(i, hooks);
            interpreter.gil.unlock();
        });
    }
    for (auto& t : threads) t.join();
}

}  // namespace

TEST_CASE("once_core: N threads, one initializer runs, the others wait detached and read the published value") {
    constexpr int n = 6;
    fake_interpreter interpreter;
    fake_cell cell;
    std::atomic<int> builds{0};
    std::vector<const std::string*> seen(n, nullptr);
    std::vector<std::string> copies(n);
    run_attached(interpreter, n, [&](int i, fake_attachment& hooks) {
        const std::string& v = cell.get_or_init(hooks, [&] {
            ++builds;
            // "Releases the GIL" and waits until the n - 1 others let go of it in the core:
            // they wait detached (else they would hold the GIL this thread takes back).
            interpreter.gil.unlock();
            interpreter.detaches.wait_for(n);  // its own detach before claiming, and theirs
            interpreter.gil.lock();
            return std::string("value of T") + std::to_string(i);
        });
        seen[i] = &v;
        copies[i] = v;  // a read of the published value, which TSan checks for a race
    });
    CHECK(builds == 1);
    for (int i = 0; i < n; ++i) {
        CHECK(seen[i] == &cell.value);
        CHECK(copies[i] == cell.value);
    }
    CHECK(cell.core.is_full());
}

TEST_CASE("once_core: readers on the fast path (get, no lock) see the value an initializer publishes") {
    // The readers poll `get` (as a caller of py_once_lock::get may) while T0 publishes: the
    // only order between T0's write of the value and their read of it is the state's
    // release store and acquire load, which is what TSan checks here.
    constexpr int readers = 3, rounds = 50;
    for (int round = 0; round < rounds; ++round) {
        fake_interpreter interpreter;
        fake_cell cell;
        latch started;
        std::vector<std::string> copies(readers + 1);
        run_attached(interpreter, readers + 1, [&](int i, fake_attachment& hooks) {
            interpreter.gil.unlock();  // the readers run "free-threaded": no GIL between them
            if (i == 0) {
                started.wait_for(readers);
                interpreter.gil.lock();
                copies[0] = cell.get_or_init(hooks, [&] { return std::string(100, 'x') + std::to_string(round); });
                interpreter.gil.unlock();
            } else {
                started.arrive();
                const std::string* v = nullptr;
                while ((v = cell.get()) == nullptr) std::this_thread::yield();  // until published
                copies[i] = *v;
            }
            interpreter.gil.lock();
        });
        INFO("round " << round);
        for (int i = 1; i <= readers; ++i) CHECK(copies[i] == copies[0]);
    }
}

TEST_CASE("once_core: a failing initializer resets the cell and exactly one waiter retries") {
    constexpr int waiters = 4;
    fake_interpreter interpreter;
    fake_cell cell;
    std::atomic<int> failing_builds{0}, retries{0};
    latch claimed;
    std::string a_error;
    std::vector<std::string> copies(waiters + 1);
    run_attached(interpreter, waiters + 1, [&](int i, fake_attachment& hooks) {
        if (i == 0) {
            try {
                cell.get_or_init(hooks, [&]() -> std::string {
                    ++failing_builds;
                    interpreter.gil.unlock();
                    claimed.arrive();
                    interpreter.detaches.wait_for(1 + waiters);  // its own detach + each waiter's
                    interpreter.gil.lock();
                    throw std::runtime_error("T0's initializer fails");
                });
            } catch (const std::runtime_error& e) {
                a_error = e.what();
            }
            return;
        }
        interpreter.gil.unlock();
        claimed.wait_for(1);  // T0 holds the claim
        interpreter.gil.lock();
        copies[i] = cell.get_or_init(hooks, [&] {
            ++retries;
            return std::string("value of T") + std::to_string(i);
        });
    });
    CHECK(failing_builds == 1);
    CHECK(a_error == "T0's initializer fails");
    CHECK(retries == 1);
    for (int i = 1; i <= waiters; ++i) CHECK(copies[i] == cell.value);
}

TEST_CASE("once_core: abandon (a forced unwind) resets a claimed cell and wakes a waiter, else does nothing") {
    fake_interpreter interpreter;
    fake_cell cell;
    latch claimed;
    std::atomic<int> builds{0};
    std::string waiter_got;
    bool claimer_claimed = false, abandoned_twice_is_harmless = false;
    run_attached(interpreter, 2, [&](int i, fake_attachment& hooks) {
        if (i == 0) {
            claimer_claimed = cell.core.wait_or_claim(hooks) == gilonce::detail::once_core::outcome::claimed;  // the cell is empty
            interpreter.gil.unlock();  // a thread torn down while it wants the GIL back
            claimed.arrive();
            interpreter.detaches.wait_for(2);  // the waiter is detached inside the core
            cell.core.abandon();
            cell.core.abandon();  // no longer claimed by this thread: nothing happens
            abandoned_twice_is_harmless = true;
            interpreter.gil.lock();
            return;
        }
        interpreter.gil.unlock();
        claimed.wait_for(1);
        interpreter.gil.lock();
        waiter_got = cell.get_or_init(hooks, [&] {
            ++builds;
            return std::string("the waiter's value");
        });
    });
    CHECK(claimer_claimed);
    CHECK(abandoned_twice_is_harmless);
    CHECK(builds == 1);
    CHECK(waiter_got == "the waiter's value");
}

TEST_CASE("once_core: re-entry is seen on the claiming thread only") {
    fake_interpreter interpreter;
    fake_cell cell;
    latch claimed, checked;
    bool claimer_sees_itself = false, other_sees_claimer = true, claimer_gets_error = false;
    run_attached(interpreter, 2, [&](int i, fake_attachment& hooks) {
        if (i == 0) {
            cell.get_or_init(hooks, [&] {
                claimer_sees_itself = cell.core.running_on_this_thread();
                try {
                    cell.get_or_init(hooks, [] { return std::string("never"); });
                } catch (const std::logic_error&) {
                    claimer_gets_error = true;
                }
                interpreter.gil.unlock();
                claimed.arrive();
                checked.wait_for(1);
                interpreter.gil.lock();
                return std::string("value");
            });
            return;
        }
        interpreter.gil.unlock();
        claimed.wait_for(1);
        other_sees_claimer = cell.core.running_on_this_thread();
        checked.arrive();
        interpreter.gil.lock();
    });
    CHECK(claimer_sees_itself);
    CHECK(claimer_gets_error);
    CHECK_FALSE(other_sees_claimer);
}

TEST_CASE("once_core: many rounds of racing threads, some initializers failing, one value each round") {
    constexpr int rounds = 200, n = 4;
    for (int round = 0; round < rounds; ++round) {
        fake_interpreter interpreter;
        fake_cell cell;
        std::atomic<int> successes{0};
        std::vector<std::string> copies(n);
        std::vector<bool> failed(n, false);
        run_attached(interpreter, n, [&](int i, fake_attachment& hooks) {
            try {
                copies[i] = cell.get_or_init(hooks, [&]() -> std::string {
                    if ((round + i) % 3 == 0) throw std::runtime_error("fails");  // some fail
                    ++successes;
                    return std::to_string(round) + "/" + std::to_string(i);
                });
            } catch (const std::runtime_error&) {
                failed[i] = true;
            }
        });
        INFO("round " << round);
        // Some thread's initializer succeeds each round: exactly one success, kept.
        REQUIRE(successes == 1);
        for (int i = 0; i < n; ++i)
            if (!failed[i]) CHECK(copies[i] == cell.value);
    }
}
