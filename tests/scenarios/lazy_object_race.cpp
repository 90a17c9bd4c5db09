// scenarios/lazy_object_race.cpp: the naive static and the gil_once_cell, raced (see .hpp).
#include "lazy_object_race.hpp"

#include <gilonce/gilonce.hpp>
#include <pybind11/embed.h>

#include <string>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"

namespace py = pybind11;

namespace scenarios {
namespace {

// How the initializer behaves on each thread; set by `race` before the threads start.
struct choreography {
    harness::event a_released{"A released the GIL inside the initializer"};
    harness::event b_took_gil{"B holds the GIL"};
    int builds = 0;
};
choreography* current = nullptr;

// Requires: the GIL is held. On thread A it releases the GIL in the middle, as an import
// or any call into Python code may, and resumes only once B holds the GIL.
py::object build_object() {
    ++current->builds;
    harness::note("builds the object");
    py::object value = py::dict();
    if (std::string(harness::thread_name()) == "A") {
        harness::without_gil([] {
            current->a_released.set();
            current->b_took_gil.wait();
        });
    }
    return value;
}

// BAD: the static's guard (a once-lock) stays held while the initializer releases the GIL.
const py::object& naive_cached_object() {
    static const py::object value = [] {
        harness::record(harness::event_kind::holds, static_guard);
        py::object v = build_object();
        harness::record(harness::event_kind::releases, static_guard);
        return v;
    }();
    return value;
}

const py::object& static_accessor(gilonce::gil_token) {
    harness::record(harness::event_kind::waits, static_guard);
    const py::object& v = naive_cached_object();
    harness::record(harness::event_kind::passes, static_guard);
    return v;
}

gilonce::gil_once_cell<py::object> cached_object_cell{"cached object"};
const py::object& cell_accessor(gilonce::gil_token gil) {
    return cached_object_cell.get_or_init(gil, build_object);
}

// Plays the table in the header with `get` as the accessor under test.
harness::scenario_result race(const py::object& (*get)(gilonce::gil_token)) {
    choreography c;
    current = &c;
    const py::object* seen_a = nullptr;
    const py::object* seen_b = nullptr;
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) { seen_a = &get(gil); }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([&] { c.a_released.wait(); });
             c.b_took_gil.set();
             seen_b = &get(gil);
         }},
    });
    current = nullptr;
    if (seen_a != seen_b) return harness::scenario_result::fail("A and B got different objects");
    return harness::scenario_result::pass("both threads got the same object; built " +
                                          std::to_string(c.builds) + " times");
}

}  // namespace

harness::scenario_result race_on_function_local_static() { return race(static_accessor); }
harness::scenario_result race_on_gil_once_cell() { return race(cell_accessor); }

const std::vector<harness::scenario>& all() {
    static const std::vector<harness::scenario> list{
        {"00-foundation", "race_on_function_local_static",
         "a once-lock held across a GIL release deadlocks against a thread holding the GIL",
         harness::verdict::deadlocked,
         {"A holds static guard of naive_cached_object and waits for GIL", "B holds GIL and waits for static guard of naive_cached_object", "blocked in futex()"}, race_on_function_local_static},
        {"00-foundation", "race_on_gil_once_cell",
         "with the GIL as the only lock nobody blocks; the value is built twice, one is kept",
         harness::verdict::finished,
         {"both threads got the same object", "built 2 times"}, race_on_gil_once_cell},
    };
    return list;
}

}  // namespace scenarios
