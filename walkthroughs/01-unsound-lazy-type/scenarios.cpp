// Step 01's scenarios (see scenarios.hpp). Each runs in a fresh watchdog child, so each
// starts with a type that was never built. None of them *uses* an unready type: they only
// look at its flags. Creating an instance from it would be undefined behaviour.
#include "scenarios.hpp"

#include <optional>
#include <string>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "unsound_lazy_type.hpp"

namespace step01 {
namespace {

constexpr const char* step = "01-unsound-lazy-type";

PyObject* make_default_name(gilonce::gil_token) { return PyUnicode_FromString("red"); }

// What a caller saw when it got the type, recorded at that moment: the same object
// becomes ready later, so looking at it afterwards would hide the bug.
// Until a caller has looked, there is no sighting at all: neither "ready" nor "not ready",
// so a scenario whose caller never looked cannot report what it predicts.
struct sighting {
    std::optional<bool> ready;
    std::string readiness;
    void take(PyTypeObject* type) {
        ready = type != nullptr && PyType_HasFeature(type, Py_TPFLAGS_READY);
        readiness = describe_readiness(type);
        harness::note("got the type: " + readiness);
    }
};

harness::scenario_result verdict_on(const sighting& seen, const std::string& who) {
    if (!seen.ready.has_value())
        return harness::scenario_result::fail(who + " never got the type: the scenario did not run as written");
    if (*seen.ready) return harness::scenario_result::pass(who + " got the type: " + seen.readiness);
    return harness::scenario_result::fail(who + " got a type that is not ready (" + seen.readiness +
                                          "); creating an instance from it would be undefined behaviour");
}

// Each scenario has its own lazy type: namespace-scope objects whose constructors call no
// Python API. A fresh child process gets them unbuilt.
unsound_lazy_type plain_color("step01.Color", {{"DEFAULT_NAME", make_default_name}});

// --8<-- [start:reentrant_scenario]
sighting seen_by_factory;

unsound_lazy_type recursive_color(
    "step01.Color",
    {{"DEFAULT_NAME", make_default_name},
     {"RED", [](gilonce::gil_token gil) -> PyObject* {
          // RED = Color(...) needs the type first: ask for it, as a class attribute whose
          // value is an instance of the class must. Look at it, but do not use it.
          seen_by_factory.take(recursive_color.get(gil));
          Py_RETURN_NONE;  // a stand-in: the real factory would call Color() here
      }}});
// --8<-- [end:reentrant_scenario]

// --8<-- [start:two_thread_scenario]
harness::event a_released("A released the GIL in a factory");
harness::event b_looked("B looked at the type");

unsound_lazy_type slow_color(
    "step01.Color",
    {{"DEFAULT_NAME", [](gilonce::gil_token) -> PyObject* {
          // As an import or any Python code may, this factory releases the GIL.
          harness::without_gil([] {
              a_released.set();
              b_looked.wait();
          });
          return PyUnicode_FromString("red");
      }}});
// --8<-- [end:two_thread_scenario]

}  // namespace

harness::scenario_result single_caller_gets_ready_type() {
    harness::traced_gil gil;
    sighting seen;
    seen.take(plain_color.get(gil.token()));
    return verdict_on(seen, "the only caller");
}

harness::scenario_result reentrant_call_sees_unready_type() {
    harness::traced_gil gil;
    recursive_color.get(gil.token());
    return verdict_on(seen_by_factory, "the re-entrant call from RED's factory");
}

// --8<-- [start:two_thread_run]
harness::scenario_result second_thread_sees_unready_type() {
    sighting seen_by_b;
    harness::run_threads({
        {"A", [](gilonce::gil_token gil) { slow_color.get(gil); }},
        {"B", [&](gilonce::gil_token gil) {
             harness::without_gil([] { a_released.wait(); });
             seen_by_b.take(slow_color.get(gil));
             b_looked.set();
         }},
    });
    return verdict_on(seen_by_b, "thread B");
}
// --8<-- [end:two_thread_run]

const std::vector<harness::scenario>& scenarios() {
    static const std::vector<harness::scenario> list{
        {step, "single_caller_gets_ready_type",
         "with one caller and well-behaved factories the flag looks correct: the bug hides",
         harness::verdict::finished,
         {"the only caller got the type: ready"}, single_caller_gets_ready_type},
        {step, "reentrant_call_sees_unready_type",
         "a class-attribute factory that asks for the type gets it before PyType_Ready",
         harness::verdict::wrong_result,
         {"the re-entrant call from RED's factory got a type that is not ready (Py_TPFLAGS_READY unset, no tp_dict)"}, reentrant_call_sees_unready_type},
        {step, "second_thread_sees_unready_type",
         "a factory releases the GIL; another thread gets the half-built type",
         harness::verdict::wrong_result,
         {"thread B got a type that is not ready (Py_TPFLAGS_READY unset, no tp_dict)"}, second_thread_sees_unready_type},
    };
    return list;
}

}  // namespace step01
