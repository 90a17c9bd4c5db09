// Tests of the harness itself: a verdict the watchdog gives must be the one that happened.
// If the harness could miss a deadlock or call a finished scenario deadlocked, every
// walkthrough verdict built on it would be worthless, so each verdict is provoked here.
#include <catch2/catch.hpp>

#include <pybind11/embed.h>

#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "harness/event.hpp"
#include "harness/scenario.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "harness/trace.hpp"
#include "harness/watchdog.hpp"

namespace py = pybind11;
using harness::event_kind;
using harness::verdict;

namespace {
harness::trace_event make_event(const char* thread, event_kind kind, const char* resource) {
    harness::trace_event e{};
    e.kind = kind;
    std::snprintf(e.thread, sizeof e.thread, "%s", thread);
    std::snprintf(e.resource, sizeof e.resource, "%s", resource);
    return e;
}
}  // namespace

TEST_CASE("a lock-order inversion between two threads is reported as a deadlock with its cycle") {
    harness::outcome out = harness::run_in_child([] {
        std::mutex first, second;
        harness::event a_has_first("A holds first"), b_has_second("B holds second");
        std::thread a([&] {
            harness::set_thread_name("A");
            std::lock_guard<std::mutex> l1(first);
            harness::record(event_kind::holds, "first");
            a_has_first.set();
            b_has_second.wait();
            harness::record(event_kind::waits, "second");
            std::lock_guard<std::mutex> l2(second);
        });
        std::thread b([&] {
            harness::set_thread_name("B");
            std::lock_guard<std::mutex> l2(second);
            harness::record(event_kind::holds, "second");
            b_has_second.set();
            a_has_first.wait();
            harness::record(event_kind::waits, "first");
            std::lock_guard<std::mutex> l1(first);
        });
        a.join();
        b.join();
        return harness::scenario_result::pass();
    });
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::deadlocked);
    CHECK(out.detail.find("A holds first and waits for second") != std::string::npos);
    CHECK(out.detail.find("B holds second and waits for first") != std::string::npos);
    // The verdict rests on observation, not on the trace alone: both threads seen blocked.
    CHECK(out.detail.find("observed: A (tid ") != std::string::npos);
    CHECK(out.detail.find("B (tid ") != std::string::npos);
    CHECK(out.detail.find("blocked in futex() at each of") != std::string::npos);
    // No bound on out.seconds: a loaded machine may take seconds to get there, and a verdict
    // waited out until the deadline would be `hung`, not `deadlocked`.
}

TEST_CASE("a wait-for cycle that only the trace claims is not called a deadlock") {
    // Both threads record "waits for" the lock the other records holding, then simply sleep
    // (holding nothing real) and finish: a cycle on paper, no thread ever blocked on a lock.
    harness::outcome out = harness::run_in_child([] {
        harness::event a_claims("A claims to hold first"), b_claims("B claims to hold second");
        auto claimant = [&](const char* name, const char* mine, const char* theirs, harness::event& me,
                            harness::event& other) {
            harness::set_thread_name(name);
            harness::record(event_kind::holds, mine);
            me.set();
            other.wait();
            harness::record(event_kind::waits, theirs);
            std::this_thread::sleep_for(std::chrono::milliseconds(300));  // longer than the settle time
            harness::record(event_kind::passes, theirs);
            harness::record(event_kind::releases, mine);
        };
        std::thread a(claimant, "A", "first", "second", std::ref(a_claims), std::ref(b_claims));
        std::thread b(claimant, "B", "second", "first", std::ref(b_claims), std::ref(a_claims));
        a.join();
        b.join();
        return harness::scenario_result::pass("both threads finished");
    });
    INFO(out.summary());
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "both threads finished");
}

TEST_CASE("a scenario that returns is reported as finished, with its detail") {
    harness::outcome out = harness::run_in_child([] { return harness::scenario_result::pass("42"); });
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "42");
}

TEST_CASE("a scenario whose check fails is reported as a wrong result") {
    harness::outcome out = harness::run_in_child([] { return harness::scenario_result::fail("got 41"); });
    REQUIRE(out.observed == verdict::wrong_result);
    CHECK(out.detail == "got 41");
}

TEST_CASE("a scenario that throws is reported as a wrong result naming the exception") {
    harness::outcome out = harness::run_in_child([]() -> harness::scenario_result {
        throw std::runtime_error("boom");
    });
    REQUIRE(out.observed == verdict::wrong_result);
    CHECK(out.detail == "exception: boom");
}

TEST_CASE("a scenario killed by a signal is reported as crashed with that signal") {
    harness::outcome out = harness::run_in_child([]() -> harness::scenario_result {
        std::signal(SIGABRT, SIG_DFL);
        std::abort();
    });
    REQUIRE(out.observed == verdict::crashed);
    CHECK(out.signal == SIGABRT);
}

TEST_CASE("a hang that leaves no cycle in the trace is bounded by the deadline") {
    harness::watchdog_options options;
    options.deadline = std::chrono::milliseconds(300);
    harness::outcome out = harness::run_in_child(
        [] {
            harness::event never("never set");
            never.wait(std::chrono::hours(1));
            return harness::scenario_result::pass();
        },
        options);
    REQUIRE(out.observed == verdict::deadlocked);
    CHECK(out.detail.find("no confirmed wait-for cycle") != std::string::npos);
    CHECK(out.detail.find("1 of 1 threads blocked in futex()") != std::string::npos);
}

TEST_CASE("the wait-for analysis finds cycles and only cycles") {
    using E = std::vector<harness::trace_event>;
    SECTION("waiting for a free resource is not a deadlock") {
        E events{make_event("A", event_kind::holds, "GIL"), make_event("B", event_kind::waits, "GIL")};
        CHECK_FALSE(harness::find_deadlock(events).found);
    }
    SECTION("a released resource is no longer held") {
        E events{make_event("A", event_kind::holds, "L"), make_event("B", event_kind::holds, "GIL"),
                 make_event("A", event_kind::waits, "GIL"), make_event("B", event_kind::releases, "GIL"),
                 make_event("B", event_kind::waits, "L")};
        CHECK_FALSE(harness::find_deadlock(events).found);
    }
    SECTION("a thread waiting for what it holds deadlocks alone") {
        E events{make_event("A", event_kind::holds, "guard"), make_event("A", event_kind::waits, "guard")};
        auto report = harness::find_deadlock(events);
        REQUIRE(report.found);
        CHECK(report.describe() == "A holds guard and waits for guard");
    }
    SECTION("a thread that stopped waiting is not part of a cycle") {
        E events{make_event("A", event_kind::holds, "L"), make_event("B", event_kind::holds, "GIL"),
                 make_event("B", event_kind::waits, "L"), make_event("B", event_kind::passes, "L"),
                 make_event("A", event_kind::waits, "GIL")};
        CHECK_FALSE(harness::find_deadlock(events).found);
    }
}

TEST_CASE("recording without an installed log is a no-op, and a log keeps the order") {
    harness::install_trace(nullptr);
    harness::note("dropped");
    harness::trace_log log;
    log.clear();
    harness::install_trace(&log);
    harness::set_thread_name("main");
    harness::note("first");
    harness::record(event_kind::holds, "GIL");
    harness::install_trace(nullptr);
    auto events = log.snapshot();
    REQUIRE(events.size() == 2);
    CHECK(std::string(events[0].text) == "first");
    CHECK(events[1].kind == event_kind::holds);
    CHECK(std::string(events[1].thread) == "main");
}

TEST_CASE("waiting on an event while holding the GIL is refused, not a hang") {
    harness::traced_gil gil;
    harness::event e("e");
    CHECK_THROWS_AS(e.wait(), std::logic_error);
}

TEST_CASE("without_gil lets another thread run Python code at an explicit point") {
    harness::event a_released("A released the GIL"), b_ran("B ran Python code");
    std::vector<std::string> order;
    harness::run_threads({
        {"A", [&](gilonce::gil_token) {
             harness::without_gil([&] {
                 a_released.set();
                 b_ran.wait();
             });
             order.push_back("A resumed");
         }},
        {"B", [&](gilonce::gil_token) {
             harness::without_gil([&] { a_released.wait(); });
             py::exec("x = 1 + 1");
             order.push_back("B ran");
             b_ran.set();
         }},
    });
    CHECK(order == std::vector<std::string>{"B ran", "A resumed"});
}

TEST_CASE("run_threads reports which thread threw") {
    CHECK_THROWS_WITH(harness::run_threads({{"A", [](gilonce::gil_token) {}},
                                            {"B", [](gilonce::gil_token) { throw std::runtime_error("bad"); }}}),
                      "thread B: bad");
}

TEST_CASE("a prediction holds only with its verdict and every expected detail") {
    harness::scenario s{"00-test", "probe", "a prediction with details", verdict::finished,
                        {"built 2 times", "the other was released"}, {}, {}};
    harness::outcome o;
    o.observed = verdict::finished;
    o.detail = "both threads got the same object, built 2 times; the other was released";
    CHECK(harness::as_predicted(s, o));
    o.detail = "both threads got the same object, built 1 times; the other was released";
    CHECK_FALSE(harness::as_predicted(s, o));  // the right verdict is not enough
    CHECK(harness::missing_details(s, o) == std::vector<std::string>{"built 2 times"});
    o.detail = "both threads got the same object, built 2 times; the other was released";
    o.observed = verdict::wrong_result;
    CHECK_FALSE(harness::as_predicted(s, o));
    CHECK(harness::describe_prediction(s) == "finished, with «built 2 times»; «the other was released»");
}
