// Step 07's Catch2 tests of minimal_once_cell, the exactly-once cell in small form: one run
// among racing threads whose initializer releases the GIL, a waiter seen waiting without the
// GIL (another thread takes it meanwhile), and a failing initializer retried by one waiter.
// Threads are ordered by events, never by sleeps; each test runs in a watchdog child, so a
// cell that waited holding the GIL, or never woke a waiter, is reported instead of hanging.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gilonce/py_ref.hpp>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "harness/watchdog.hpp"
#include "minimal_once_cell.hpp"

using gilonce::gil_token;
using gilonce::py_ref;
using step07::minimal_once_cell;

namespace {
py_ref new_int(long v) { return py_ref::steal(PyLong_FromLong(v)); }
bool is_me(const char* name) { return std::string(harness::thread_name()) == name; }

// Plays `scenario` in a watchdog child; it must finish with `detail`.
void check_in_child(harness::scenario_result (*scenario)(), const std::string& detail) {
    harness::watchdog_options short_deadline;
    short_deadline.deadline = std::chrono::milliseconds(3000);
    auto out = harness::run_in_child(scenario, short_deadline);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events) << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == detail);
}

// Six threads ask at once; the first initializer waits, without the GIL, until all asked.
harness::scenario_result racing_threads_one_run() {
    constexpr int n = 6;
    harness::traced_gil gil;  // declared first: the cell's py_ref dies with the GIL held
    minimal_once_cell<py_ref> cell;
    std::vector<std::unique_ptr<harness::event>> asked;
    for (int i = 0; i < n; ++i) asked.push_back(std::make_unique<harness::event>("T" + std::to_string(i) + " asks"));
    std::atomic<int> runs{0};
    std::vector<const py_ref*> seen(n, nullptr);
    std::vector<harness::scenario_thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.push_back({"T" + std::to_string(i), [&, i](gil_token token) {
                               asked[i]->set();  // holding the GIL: it is let go of only inside the cell
                               seen[i] = &cell.get_or_init(token, [&] {
                                   ++runs;
                                   // Every thread asked; taking the GIL back after that means
                                   // each of the others let it go inside the cell, waiting.
                                   harness::without_gil([&] {
                                       for (auto& e : asked) e->wait();
                                   });
                                   return new_int(i);
                               });
                           }});
    }
    harness::run_threads(threads);
    int same = 0;
    for (int i = 0; i < n; ++i) same += seen[i] != nullptr && seen[i] == seen[0];
    if (runs != 1 || same != n)
        return harness::scenario_result::fail(std::to_string(runs.load()) + " runs; " + std::to_string(same) +
                                              " threads got the first one's value");
    return harness::scenario_result::pass("1 run; all 6 threads got the same value");
}
}  // namespace

TEST_CASE("minimal_once_cell: N racing threads whose first initializer releases the GIL: one run, one value") {
    check_in_child(racing_threads_one_run, "1 run; all 6 threads got the same value");
}

namespace {
// A runs the initializer, without the GIL, until C has run Python code. B asks while A runs,
// holding the GIL; C can take the GIL only if B's wait let go of it.
harness::scenario_result waiter_waits_without_the_gil() {
    harness::event a_running("A is inside the initializer, without the GIL");
    harness::event b_asks("B holds the GIL and asks");
    harness::event c_ran("C took the GIL and ran Python code");
    harness::traced_gil gil;
    minimal_once_cell<py_ref> cell;
    bool b_returned_before_c = false;
    long c_result = 0;
    const py_ref* got_a = nullptr;
    const py_ref* got_b = nullptr;
    harness::run_threads({
        {"A", [&](gil_token token) {
             got_a = &cell.get_or_init(token, [&] {
                 harness::without_gil([&] {
                     a_running.set();
                     c_ran.wait();
                 });
                 return new_int(1);
             });
         }},
        {"B", [&](gil_token token) {
             harness::without_gil([&] { a_running.wait(); });
             b_asks.set();
             got_b = &cell.get_or_init(token, []() -> py_ref { throw std::logic_error("B's initializer ran"); });
             b_returned_before_c = !c_ran.is_set();
         }},
        {"C", [&](gil_token) {
             harness::without_gil([&] { b_asks.wait(); });
             auto globals = py_ref::steal(PyDict_New());
             auto r = py_ref::steal(PyRun_String("sum(range(10))", Py_eval_input, globals.get(), nullptr));
             c_result = r ? PyLong_AsLong(r.get()) : -1;
             c_ran.set();
         }},
    });
    if (c_result != 45 || b_returned_before_c || got_a == nullptr || got_a != got_b)
        return harness::scenario_result::fail("C got " + std::to_string(c_result) + "; B returned before C ran: " +
                                              (b_returned_before_c ? "yes" : "no"));
    return harness::scenario_result::pass("C ran Python code while B waited in the cell; A and B got one value");
}
}  // namespace

TEST_CASE("minimal_once_cell: a waiter waits without the GIL: another thread takes it meanwhile") {
    check_in_child(waiter_waits_without_the_gil, "C ran Python code while B waited in the cell; A and B got one value");
}

namespace {
// A's initializer fails once B and C wait in the cell; one of them must run its own.
harness::scenario_result failure_one_waiter_retries() {
    harness::event a_running("A runs the initializer");
    harness::event b_asks("B asks"), c_asks("C asks");
    harness::traced_gil gil;
    minimal_once_cell<py_ref> cell;
    std::atomic<int> runs{0};
    std::string a_error, retried_by;
    const py_ref* got[2] = {nullptr, nullptr};
    auto init = [&]() -> py_ref {
        ++runs;
        if (is_me("A")) {
            harness::without_gil([&] {
                a_running.set();
                b_asks.wait();  // B and C hold the GIL from "asks" until the cell lets it go
                c_asks.wait();
            });
            throw std::runtime_error("A's initializer failed");
        }
        retried_by = harness::thread_name();
        return new_int(2);
    };
    auto waiter = [&](int i, harness::event& asks) {
        return [&, i](gil_token token) {
            harness::without_gil([&] { a_running.wait(); });
            asks.set();
            got[i] = &cell.get_or_init(token, init);
        };
    };
    harness::run_threads({
        {"A", [&](gil_token token) {
             try {
                 (void)cell.get_or_init(token, init);
             } catch (const std::runtime_error& e) {
                 a_error = e.what();
             }
         }},
        {"B", waiter(0, b_asks)},
        {"C", waiter(1, c_asks)},
    });
    if (a_error != "A's initializer failed" || runs != 2 || (retried_by != "B" && retried_by != "C") ||
        got[0] == nullptr || got[0] != got[1] || PyLong_AsLong(got[0]->get()) != 2)
        return harness::scenario_result::fail("A saw '" + a_error + "'; " + std::to_string(runs.load()) +
                                              " runs; retried by '" + retried_by + "'");
    return harness::scenario_result::pass("A got its error; one waiter ran its own initializer (2 runs); B and C "
                                          "got its value");
}
}  // namespace

TEST_CASE("minimal_once_cell: a failing initializer leaves it empty and exactly one waiter runs its own") {
    check_in_child(failure_one_waiter_retries,
                   "A got its error; one waiter ran its own initializer (2 runs); B and C got its value");
}
