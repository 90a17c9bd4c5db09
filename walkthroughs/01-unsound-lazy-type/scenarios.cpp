// Step 01's scenarios (see scenarios.hpp). Each runs in a fresh watchdog child, so each
// starts with a type that was never built. All but one only look at the type's flags; the
// one that uses the unready type does so to show what happens then: the child crashes,
// and the watchdog reports the signal.
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
                                          "); using it would crash (as using_the_unready_type_crashes shows)");
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

// --8<-- [start:crash_scenario]
unsound_lazy_type used_color(
    "step01.Color",
    {{"DEFAULT_NAME", make_default_name},
     {"RED", [](gilonce::gil_token gil) -> PyObject* {
          // This time RED's factory uses what it gets, as `Color(...)` or `Color.DEFAULT_NAME`
          // would: before PyType_Ready, even the type's own type (ob_type) is still null.
          PyObject* type = reinterpret_cast<PyObject*>(used_color.get(gil));
          harness::note("RED's factory reads Color.DEFAULT_NAME from the type it got");
          return PyObject_GetAttrString(type, "DEFAULT_NAME");
      }}});
// --8<-- [end:crash_scenario]

// --8<-- [start:failed_build_scenario]
unsound_lazy_type failing_color(
    "step01.Color", {{"DEFAULT_NAME", [](gilonce::gil_token) -> PyObject* {
                          PyErr_SetString(PyExc_RuntimeError, "the factory failed");
                          return nullptr;
                      }}});
// --8<-- [end:failed_build_scenario]

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer catches the SIGSEGV, reports it, and (abort_on_error=1) aborts.
constexpr const char* segfault_evidence = "AddressSanitizer: SEGV on unknown address";
#else
constexpr const char* segfault_evidence = "crashed with signal 11 (Segmentation fault)";
#endif

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

harness::scenario_result using_the_unready_type_crashes() {
    harness::traced_gil gil;
    used_color.get(gil.token());
    return harness::scenario_result::pass("the process survived reading an attribute of the unready type");
}

harness::scenario_result failed_build_leaves_the_flag_set() {
    harness::traced_gil gil;
    if (failing_color.get(gil.token()) != nullptr)
        return harness::scenario_result::fail("the failing build returned a type: the scenario did not run as written");
    PyErr_Clear();
    sighting seen;
    seen.take(failing_color.get(gil.token()));  // the retry: the flag says "done"
    return verdict_on(seen, "the retry after a failed build");
}

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
        {step, "using_the_unready_type_crashes",
         "RED's factory reads an attribute of the type it got: the process crashes",
         harness::verdict::crashed,
         {segfault_evidence}, using_the_unready_type_crashes},
        {step, "failed_build_leaves_the_flag_set",
         "a factory fails; the flag stays set, and the retry gets a type that will never be ready",
         harness::verdict::wrong_result,
         {"the retry after a failed build got a type that is not ready (Py_TPFLAGS_READY unset, no tp_dict)"},
         failed_build_leaves_the_flag_set},
    };
    return list;
}

}  // namespace step01
