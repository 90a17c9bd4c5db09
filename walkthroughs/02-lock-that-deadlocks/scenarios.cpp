// Step 02's scenarios (see scenarios.hpp). Each runs in a fresh watchdog child, so every
// lazy type starts unbuilt.
#include "scenarios.hpp"

#include <string>
#include <thread>

#include "color_type.hpp"
#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include <gilonce/py_ref.hpp>
#include "locked_lazy_types.hpp"
#include "plain_extension.hpp"

namespace step02 {
namespace {

constexpr const char* step = "02-lock-that-deadlocks";
using accessor = PyObject* (*)(gilonce::gil_token);

// --8<-- [start:two_threads]
// Thread A builds the type; DEFAULT_NAME's factory releases the GIL and resumes only once
// thread B holds the GIL and is about to ask for the type.
harness::scenario_result two_threads(accessor get_type) {
    static harness::event a_released("A released the GIL in a factory");
    static harness::event b_took_gil("B holds the GIL");
    color_attributes = {{"DEFAULT_NAME", [](gilonce::gil_token) -> PyObject* {
        harness::without_gil([] {
            a_released.set();
            b_took_gil.wait();
        });
        return PyUnicode_FromString("red");
    }}};
    PyObject* seen_by_a = nullptr;
    PyObject* seen_by_b = nullptr;
    harness::run_threads({
        {"A", [&](gilonce::gil_token gil) { seen_by_a = get_type(gil); }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([] { a_released.wait(); });
             b_took_gil.set();
             seen_by_b = get_type(gil);
         }},
    });
    if (seen_by_a == nullptr || seen_by_a != seen_by_b)
        return harness::scenario_result::fail("A and B got different type objects");
    return harness::scenario_result::pass("both threads got the same, complete type");
}
// --8<-- [end:two_threads]

// --8<-- [start:recursion]
// RED's factory asks for the type being built, as `Color.RED = Color(...)` must.
harness::scenario_result recursion(accessor get_type) {
    static accessor current = nullptr;
    current = get_type;
    trace_once_lock_waits = false;  // observe what the primitive does; do not predict it
    color_attributes = {{"RED", [](gilonce::gil_token gil) -> PyObject* {
        harness::note("RED's factory asks for the type");
        PyObject* type = current(gil);
        Py_XINCREF(type);
        return type;  // a stand-in for an instance; never reached when the call hangs
    }}};
    harness::traced_gil gil;
    PyObject* type = get_type(gil.token());
    return harness::scenario_result::pass(std::string("the recursive call returned ") +
                                          (type ? "a type" : "null"));
}
// --8<-- [end:recursion]

// One caller; DEFAULT_NAME's factory neither releases the GIL nor recurses.
harness::scenario_result single_caller(accessor get_type) {
    color_attributes = {{"DEFAULT_NAME", [](gilonce::gil_token) { return PyUnicode_FromString("red"); }}};
    harness::traced_gil gil;
    PyObject* first = get_type(gil.token());
    harness::note("asks for the type again");
    PyObject* again = get_type(gil.token());
    if (first == nullptr || first != again) return harness::scenario_result::fail("two calls, two types");
    auto name = gilonce::py_ref::steal(PyObject_GetAttrString(first, "DEFAULT_NAME"));
    if (!name || PyUnicode_CompareWithASCIIString(name.get(), "red") != 0)
        return harness::scenario_result::fail("the type has no DEFAULT_NAME");
    return harness::scenario_result::pass("one caller got the complete type, the same on every call");
}

harness::watchdog_options short_deadline() {
    harness::watchdog_options options;
    options.deadline = std::chrono::milliseconds(500);
    return options;
}

}  // namespace

const std::vector<harness::scenario>& scenarios() {
    using harness::verdict;
    static const std::vector<harness::scenario> list{
        {step, "single_caller_works_with_static",
         "with one caller and a well-behaved build each lock looks correct, as step 01's flag did",
         verdict::finished,
         {"one caller got the complete type, the same on every call"}, [] { return single_caller(get_type_with_static); }},
        {step, "single_caller_works_with_call_once", "the same with std::call_once",
         verdict::finished,
         {"one caller got the complete type, the same on every call"}, [] { return single_caller(get_type_with_call_once); }},
        {step, "single_caller_works_with_release_then_lock", "the same with pybind11's order",
         verdict::finished,
         {"one caller got the complete type, the same on every call"}, [] { return single_caller(get_type_release_then_lock); }},
        {step, "static_two_threads_deadlock",
         "a function-local static holds its guard while the build releases the GIL: "
         "A holds the guard and waits for the GIL, B holds the GIL and waits for the guard",
         verdict::deadlocked,
         {"A holds static guard and waits for GIL", "B holds GIL and waits for static guard", "blocked in futex()"}, [] { return two_threads(get_type_with_static); }},
        {step, "call_once_two_threads_deadlock",
         "std::call_once has the same lock-order inversion with the GIL",
         verdict::deadlocked,
         {"A holds once_flag and waits for GIL", "B holds GIL and waits for once_flag", "blocked in futex()"}, [] { return two_threads(get_type_with_call_once); }},
        {step, "static_recursion_aborts_single_threaded",
         "in a process that never started a second thread, libstdc++ detects the recursive "
         "static initialization and throws recursive_init_error; no handler is reached and "
         "std::terminate aborts the process",
         verdict::crashed,
         {"recursive_init_error"}, [] { return recursion(get_type_with_static); }, short_deadline()},
        {step, "static_recursion_hangs_once_threads_exist",
         "once any second thread has existed, the same recursion waits forever on the "
         "guard's futex for itself",
         verdict::deadlocked,
         {"1 of 1 threads blocked in futex()"},
         [] {
             std::thread([] {}).join();  // the process is no longer single-threaded
             return recursion(get_type_with_static);
         },
         short_deadline()},
        {step, "call_once_recursion_hangs",
         "std::call_once called from its own callable waits forever (glibc pthread_once)",
         verdict::deadlocked,
         {"1 of 1 threads blocked in futex()"}, [] { return recursion(get_type_with_call_once); }, short_deadline()},
        {step, "python_threads_deadlock_on_a_plain_static",
         "no harness: two ordinary Python threads call a plain extension function whose "
         "function-local static runs Python code that waits on a threading.Event; the "
         "watchdog sees every thread of the process blocked in futex()",
         verdict::deadlocked,
         {"no exit within", "3 of 3 threads blocked in futex()"},
         two_python_threads_and_a_plain_static, short_deadline()},
        {step, "release_then_lock_two_threads_finish",
         "pybind11's order (drop the GIL, take the once-lock, re-take the GIL) never waits "
         "for the once-lock while holding the GIL: the two threads finish",
         verdict::finished,
         {"both threads got the same, complete type"}, [] { return two_threads(get_type_release_then_lock); }},
        {step, "release_then_lock_recursion_hangs",
         "but a recursive call still waits for a once-lock its own thread holds",
         verdict::deadlocked,
         {"main holds pybind11 once_flag and waits for pybind11 once_flag", "blocked in futex()"}, [] { return recursion(get_type_release_then_lock); }, short_deadline()},
    };
    return list;
}

}  // namespace step02
