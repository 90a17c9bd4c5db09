// Step 07's scenarios (see scenarios.hpp), each in a fresh watchdog child, so every cell and
// lazy type starts empty. The threads are ordered by events, never by sleeps; each verdict
// is what the child saw: stores counted, objects compared, exceptions caught.
#include "scenarios.hpp"

#include <atomic>
#include <optional>
#include <string>

#include <gilonce/py_once_lock.hpp>
#include <gilonce/py_ref.hpp>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "mutual_types.hpp"
#include "gil_cell_without_gil_steps.hpp"  // generated from gil_cell_without_gil.steps
#include "trail_replay.hpp"
#include "unlocked_cell.hpp"

namespace step07 {
namespace {

constexpr const char* step = "07-no-gil";
constexpr const char* once_lock = "py_once_lock";  // the trace's name for the cell's lock
using result = harness::scenario_result;
using gilonce::py_ref;

// The current exception as "Type: message"; clears it.
std::string take_error() {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    auto error = py_ref::steal(value);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (!error) return "no error";
    auto text = py_ref::steal(PyObject_Str(error.get()));
    return std::string(Py_TYPE(error.get())->tp_name) + ": " + (text ? PyUnicode_AsUTF8(text.get()) : "?");
}

bool is_me(const char* name) { return std::string(harness::thread_name()) == name; }

// ---- the naive form: gil_once_cell's protocol with no GIL --------------------------------

// --8<-- [start:stores_twice]
// Two threads, no lock, in the order of SPIN's trail (gil_cell_without_gil.steps, compiled
// in): each waits before each step until the trail says it is that step's turn.
result gil_cell_protocol_without_gil_stores_twice() {
    gil_protocol_without_gil<int> cell;
    trail_replay trail(parse_trail(gil_cell_without_gil_steps));
    cell.step = [&](const char* name) { trail.step(harness::thread_name(), name); };
    int got_a = 0, got_b = 0;
    harness::run_threads({
        {"A", [&](gilonce::gil_token) {
             harness::without_gil([&] {  // as on a free-threaded build: no GIL at all
                 got_a = cell.get_or_init([] { return 1; });
                 trail.done("A");
             });
         }},
        {"B", [&](gilonce::gil_token) {
             harness::without_gil([&] {
                 got_b = cell.get_or_init([] { return 2; });
                 trail.done("B");
             });
         }},
    });
    if (!trail.diverged().empty()) return result::fail("the code left SPIN's trail: " + trail.diverged());
    if (cell.stores() == 1) return result::pass("one store");
    return result::fail("replayed the " + std::to_string(trail.replayed()) + " steps of SPIN's trail in its "
                        "order: A and B both passed the re-check (store_or_release) with full_ still false and "
                        "both stored: " + std::to_string(cell.stores()) + " stores; A returned " +
                        std::to_string(got_a) + ", B returned " + std::to_string(got_b) +
                        ", and the cell now holds " + std::to_string(cell.value()));
}
// --8<-- [end:stores_twice]

// ---- the exactly-once cell: py_once_lock -------------------------------------------------

py_ref make_palette() { return py_ref::steal(PyDict_New()); }

// --8<-- [start:step02_race]
// Step 02's shape: A runs the initializer, which releases the GIL; B takes the GIL and asks.
result py_once_lock_step02_race_builds_once() {
    gilonce::py_once_lock<py_ref> palette{"step07.palette"};
    harness::event a_released("A released the GIL in the initializer");
    harness::event b_asks("B holds the GIL and asks");
    std::atomic<int> runs{0};
    std::atomic<bool> b_returned{false};
    bool b_was_waiting = false;
    const void* got[2] = {nullptr, nullptr};
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) {
             got[0] = palette.get_or_init(gil, [&] {
                 ++runs;
                 harness::record(harness::event_kind::holds, once_lock, "runs the initializer");
                 harness::without_gil([&] {  // an import, say
                     a_released.set();
                     b_asks.wait();
                 });  // A takes the GIL back: only possible if B, still inside its call, let go of it
                 b_was_waiting = !b_returned;
                 harness::record(harness::event_kind::releases, once_lock, "publishes the value");
                 return make_palette();
             }).get();
         }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([&] { a_released.wait(); });
             b_asks.set();
             harness::record(harness::event_kind::releases, harness::gil_resource, "py_once_lock detaches before it waits");
             harness::record(harness::event_kind::waits, once_lock);
             got[1] = palette.get_or_init(gil, [&] { ++runs; return make_palette(); }).get();
             harness::record(harness::event_kind::holds, harness::gil_resource, "attached again");
             harness::record(harness::event_kind::passes, once_lock, "gets A's value");
             b_returned = true;
         }},
    });
    if (runs != 1 || got[0] == nullptr || got[0] != got[1] || !b_was_waiting)
        return result::fail(std::to_string(runs.load()) + " builds; same object: " + (got[0] == got[1] ? "yes" : "no") +
                            "; B waiting when A took the GIL back: " + (b_was_waiting ? "yes" : "no"));
    return result::pass("built once; A and B got the same object; A took the GIL back while B's call was still "
                        "waiting, so B waited without the GIL");
}
// --8<-- [end:step02_race]

// --8<-- [start:reentry]
// The initializer asks, on its own thread, for the cell it is computing.
result py_once_lock_reentry_is_an_error() {
    static gilonce::py_once_lock<py_ref> palette{"step07.reentrant_palette"};
    harness::traced_gil gil;
    std::string nested;
    const py_ref* got = palette.get_or_try_init(gil.token(), [&]() -> std::optional<py_ref> {
        harness::note("the initializer asks for its own cell");
        const py_ref* again = palette.get_or_try_init(gil.token(), [] { return std::optional<py_ref>(make_palette()); });
        nested = again != nullptr ? "the nested call returned a value" : take_error();
        return make_palette();
    });
    if (got == nullptr) return result::fail("the outer call failed: " + take_error());
    return result::pass("the nested call failed at once with " + nested +
                        "; the outer call then stored its own value");
}
// --8<-- [end:reentry]

// A fails once B and C are asking; whoever of B and C runs next must be the only one.
struct one_retry {
    harness::event a_running{"A runs the initializer"};
    harness::event b_asks{"B asks"};
    harness::event c_asks{"C asks"};
    std::atomic<int> runs{0};
    std::string retried_by;
};

// --8<-- [start:failure_retry]
// A's initializer fails while B and C wait; one of them runs the initializer again.
result py_once_lock_failure_one_waiter_retries() {
    gilonce::py_once_lock<py_ref> palette{"step07.failing_palette"};
    one_retry order;
    auto init = [&]() -> std::optional<py_ref> {
        ++order.runs;
        if (is_me("A")) {
            harness::without_gil([&] {
                order.a_running.set();
                order.b_asks.wait();
                order.c_asks.wait();
            });
            PyErr_SetString(PyExc_ValueError, "A's initializer failed");
            return std::nullopt;
        }
        order.retried_by = harness::thread_name();
        return make_palette();
    };
    std::string a_got;
    const void* got[2] = {nullptr, nullptr};
    auto waiter = [&](int i, harness::event& asks) {
        return [&, i](gilonce::gil_token gil) {
            harness::without_gil([&] { order.a_running.wait(); });
            asks.set();
            const py_ref* value = palette.get_or_try_init(gil, init);
            got[i] = value != nullptr ? value->get() : nullptr;
            if (value == nullptr) PyErr_Clear();
        };
    };
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) {
             const py_ref* value = palette.get_or_try_init(gil, init);
             a_got = value != nullptr ? "a value" : take_error();
         }},
        {"B", waiter(0, order.b_asks)},
        {"C", waiter(1, order.c_asks)},
    });
    if (order.runs != 2 || got[0] == nullptr || got[0] != got[1] || (order.retried_by != "B" && order.retried_by != "C"))
        return result::fail(std::to_string(order.runs.load()) + " runs; B and C got " +
                            (got[0] == got[1] ? "the same value" : "different values"));
    return result::pass("A's initializer failed and only A got its error (" + a_got + "); exactly one waiter ran "
                        "the initializer again (2 runs in all); B and C both got its value");
}
// --8<-- [end:failure_retry]

// ---- the two-stage type: A.PARTNER is a B, B.PARTNER is an A -----------------------------

// X asks for A and Y for B. Each stops in its first PARTNER factory, inside its stage 2,
// until the other is inside its own; then Y stays there (holding no lock) while X, on its
// way, runs B's stage 2 too and completes both types; then Y goes on.
struct inside_together {
    harness::event x_inside{"X is inside A's stage 2"};
    harness::event y_inside{"Y is inside B's stage 2"};
    harness::event x_done{"X has A, complete"};
    bool x_met = false, y_met = false;  // each thread's own flag
    void pause(char type) {
        if (is_me("X") && !x_met && type == 'A') {
            x_met = true;
            harness::without_gil([&] {
                x_inside.set();
                y_inside.wait();
            });
        } else if (is_me("Y") && !y_met && type == 'B') {
            y_met = true;
            harness::without_gil([&] {
                y_inside.set();
                x_inside.wait();
                x_done.wait();
            });
        }
    }
};

// A's and B's state as seen at the end, or what is wrong with them.
std::string check_partners(gilonce::gil_token gil) {
    if (!type_a.is_complete(gil) || !type_b.is_complete(gil)) return "a type is not complete";
    auto* a = reinterpret_cast<PyObject*>(type_a.get(gil));
    auto* b = reinterpret_cast<PyObject*>(type_b.get(gil));
    auto a_partner = py_ref::steal(PyObject_GetAttrString(a, "PARTNER"));
    auto b_partner = py_ref::steal(PyObject_GetAttrString(b, "PARTNER"));
    if (!a_partner || !b_partner) return "a PARTNER is missing: " + take_error();
    if (reinterpret_cast<PyObject*>(Py_TYPE(a_partner.get())) != b) return "A.PARTNER is not a B";
    if (reinterpret_cast<PyObject*>(Py_TYPE(b_partner.get())) != a) return "B.PARTNER is not an A";
    if (a_partner.get() != made_for('A').by_x) return "A.PARTNER is not the one X made";
    if (b_partner.get() != made_for('B').by_x) return "B.PARTNER is not the one X made";
    return {};
}

// Which of lazy_type's two protocols this copy of the lesson runs: the GIL branch (stage 1
// in a gil_once_cell, publication under the GIL), or, in step07_ft_protocol_tests, built
// with GILONCE_FREE_THREADED_PROTOCOL=1, the free-threaded one (stage 1 in a py_once_lock,
// publication under a claim whose waiters wait detached) on this GIL build.
constexpr bool free_threaded_protocol = GILONCE_DETAIL_NO_GIL_PROTOCOL != 0;
const char* const protocol_ran = free_threaded_protocol ? "lazy_type's free-threaded protocol" : "lazy_type's GIL branch";

// --8<-- [start:mutual]
// Two threads ask for A and B at once, each inside its stage 2 when the other enters its own.
result mutual_class_attributes_from_two_threads() {
    inside_together events;
    partner_hook = [&](char type) { events.pause(type); };
    PyTypeObject* got_a = nullptr;
    PyTypeObject* got_b = nullptr;
    harness::run_threads({
        {"X", [&](gilonce::gil_token gil) {
             got_a = type_a.get(gil);
             events.x_done.set();
         }},
        {"Y", [&](gilonce::gil_token gil) { got_b = type_b.get(gil); }},
    });
    partner_hook = nullptr;
    harness::traced_gil gil;
    if (got_a == nullptr || got_b == nullptr) return result::fail("a get failed: " + take_error());
    if (got_a != type_a.get(gil.token()) || got_b != type_b.get(gil.token()))
        return result::fail("a thread got a type other than the published one");
    const std::string problem = check_partners(gil.token());
    if (!problem.empty()) return result::fail(problem);
    return result::pass(std::string("X and Y were inside their stage 2 at the same moment, and X ran B's stage 2 "
                                    "while Y was still inside it: no deadlock (") +
                        protocol_ran + "); A and B complete; A.PARTNER is a B and B.PARTNER is an A, "
                        "each published once (B.PARTNER was computed " + std::to_string(made_for('B').runs) +
                        " times: X's set published, Y's dropped)");
}
// --8<-- [end:mutual]

}  // namespace

const std::vector<harness::scenario>& scenarios() {
    using harness::verdict;
    harness::watchdog_options short_deadline;
    short_deadline.deadline = std::chrono::milliseconds(2000);
    static const std::vector<harness::scenario> list{
        {step, "gil_cell_protocol_without_gil_stores_twice",
         "path: the lesson's copy of gil_once_cell's protocol (unlocked_cell.hpp) on two threads that have released "
         "the GIL, as if there were none (gil_once_cell itself refuses to compile without a GIL); the order is SPIN's "
         "trail, read from gil_cell_without_gil.steps: both pass the re-check and both store",
         verdict::wrong_result,
         {"replayed the 10 steps of SPIN's trail in its order", "A and B both passed the re-check", "2 stores",
          "A returned 1, B returned 2"},
         gil_cell_protocol_without_gil_stores_twice},
        {step, "py_once_lock_step02_race_builds_once",
         "path: py_once_lock on this GIL build (detach = PyEval_SaveThread, which releases the GIL): step 02's "
         "deadlock shape, A's initializer releases the GIL, B takes it and asks; B waits detached, so A gets the GIL "
         "back and finishes",
         verdict::finished,
         {"built once", "A and B got the same object", "B waited without the GIL"},
         py_once_lock_step02_race_builds_once},
        {step, "py_once_lock_reentry_is_an_error",
         "path: py_once_lock on this GIL build: an initializer that asks for its own cell gets a RuntimeError naming "
         "the cell, not a hang",
         verdict::finished,
         {"RuntimeError: py_once_lock 'step07.reentrant_palette': re-entrant initialization"},
         py_once_lock_reentry_is_an_error, short_deadline},
        {step, "py_once_lock_failure_one_waiter_retries",
         "path: py_once_lock on this GIL build: a failing initializer leaves the cell empty, its error goes to its "
         "own caller, and exactly one waiter runs the initializer again",
         verdict::finished,
         {"only A got its error (ValueError: A's initializer failed)", "exactly one waiter ran the initializer again",
          "2 runs in all", "B and C both got its value"},
         py_once_lock_failure_one_waiter_retries},
        {step, "mutual_class_attributes_from_two_threads",
         std::string(free_threaded_protocol
                         ? "path: lazy_type's free-threaded protocol (stage 1 in a py_once_lock, publication under a "
                           "claim whose waiters wait detached), built into this GIL build with "
                           "GILONCE_FREE_THREADED_PROTOCOL=1 (step07_ft_protocol_tests)"
                         : "path: lazy_type's GIL branch (stage 1 in a gil_once_cell, publication under the GIL); the "
                           "free-threaded protocol runs in step07_ft_protocol_tests, on this GIL build") +
             ": two lazy types whose class attributes are instances of each other, asked for by two threads inside "
             "their stage 2 at once; no lock is held across user code, so no deadlock",
         verdict::finished,
         {"X and Y were inside their stage 2 at the same moment", std::string("no deadlock (") + protocol_ran + ")",
          "A and B complete",
          "A.PARTNER is a B and B.PARTNER is an A", "each published once"},
         mutual_class_attributes_from_two_threads},
    };
    return list;
}

}  // namespace step07
