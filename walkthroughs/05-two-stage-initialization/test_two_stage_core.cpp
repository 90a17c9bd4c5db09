// Step 05's core, observed directly (each test in a watchdog child, on a type of its own):
// a factory asking for the type on the computing thread gets the ready type with nothing
// published yet, and racing threads publish exactly one thread's complete set of values.
// The scenarios (test_step05.cpp) check the same properties through step05.Color.
#include <catch2/catch.hpp>

#include <string>

#include "color_object.hpp"
#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "harness/trace.hpp"
#include "harness/watchdog.hpp"
#include "two_stage_type.hpp"

using harness::scenario_result;

namespace {

bool has(PyObject* type, const char* name) { return PyObject_HasAttrString(type, name) == 1; }

// The name of a Color class attribute ("?" if it is missing or not a Color).
std::string color_name(PyObject* type, const char* attribute) {
    auto value = gilonce::py_ref::steal(PyObject_GetAttrString(type, attribute));
    if (!value || PyObject_IsInstance(value.get(), type) != 1) {
        PyErr_Clear();
        return "?";
    }
    return PyUnicode_AsUTF8(reinterpret_cast<step05::color_object*>(value.get())->name);
}

}  // namespace

TEST_CASE("step 05 core: RED's factory gets the ready type early, with no class attribute published yet") {
    auto out = harness::run_in_child([] {
        static PyObject* early = nullptr;
        static std::string seen;
        static step05::two_stage_type lazy("step05.Early", {
            {"DEFAULT_NAME", [](gilonce::gil_token) { return PyUnicode_FromString("red"); }},
            {"RED", [](gilonce::gil_token gil) -> PyObject* {
                 early = lazy.get(gil);  // re-entrant, on the computing thread
                 if (early == nullptr) return nullptr;
                 seen = std::string(PyType_HasFeature(reinterpret_cast<PyTypeObject*>(early), Py_TPFLAGS_READY)
                                        ? "ready" : "not ready") +
                        (has(early, "DEFAULT_NAME") ? ", DEFAULT_NAME published" : ", no DEFAULT_NAME") +
                        (has(early, "RED") ? ", RED published" : ", no RED");
                 return step05::new_color(early, "red");
             }},
        });
        harness::traced_gil gil;
        PyObject* complete = lazy.get(gil.token());
        if (complete == nullptr) return scenario_result::fail("get failed");
        if (complete != early) return scenario_result::fail("the early type is not the one get returns");
        return scenario_result::pass("the factory saw it " + seen + "; then RED is " +
                                     color_name(complete, "RED") + ", published " +
                                     std::to_string(lazy.publications()) + " time(s)");
    });
    INFO(out.summary());
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail == "the factory saw it ready, no DEFAULT_NAME, no RED; then RED is red, published 1 time(s)");
}

TEST_CASE("step 05 core: racing threads publish one thread's complete set, the other's values are released") {
    auto out = harness::run_in_child([] {
        static harness::event a_released("A released the GIL in GREEN's factory"), b_done("B got the type");
        // Each Color is named after the thread that computed it. A computes RED, then
        // releases the GIL in GREEN's factory until B has run all of stage 2.
        static step05::two_stage_type lazy("step05.Raced", {
            {"RED", [](gilonce::gil_token gil) -> PyObject* {
                 PyObject* type = lazy.get(gil);
                 return type ? step05::new_color(type, harness::thread_name()) : nullptr;
             }},
            {"GREEN", [](gilonce::gil_token gil) -> PyObject* {
                 if (std::string(harness::thread_name()) == "A")
                     harness::without_gil([] {
                         a_released.set();
                         b_done.wait();
                     });
                 PyObject* type = lazy.get(gil);
                 return type ? step05::new_color(type, harness::thread_name()) : nullptr;
             }},
        });
        PyObject* seen[2] = {nullptr, nullptr};
        std::string got[2];
        long colors_before = 0;
        {
            harness::traced_gil gil;
            colors_before = step05::live_colors();
        }
        harness::run_threads({
            {"A", [&](gilonce::gil_token gil) {
                 seen[0] = lazy.get(gil);
                 if (seen[0]) got[0] = color_name(seen[0], "RED") + "/" + color_name(seen[0], "GREEN");
             }},
            {"B", [&](gilonce::gil_token gil) {
                 harness::without_gil([] { a_released.wait(); });
                 seen[1] = lazy.get(gil);
                 if (seen[1]) got[1] = color_name(seen[1], "RED") + "/" + color_name(seen[1], "GREEN");
                 b_done.set();
             }},
        });
        harness::traced_gil gil;
        if (seen[0] == nullptr || seen[0] != seen[1]) return scenario_result::fail("A and B got different types");
        return scenario_result::pass("A got RED/GREEN " + got[0] + ", B got " + got[1] + "; published " +
                                     std::to_string(lazy.publications()) + " time(s); " +
                                     std::to_string(step05::live_colors() - colors_before) + " new Colors alive");
    });
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == harness::verdict::finished);
    // B's set, both values; A's RED and GREEN (computed, never published) were released.
    CHECK(out.detail == "A got RED/GREEN B/B, B got B/B; published 1 time(s); 2 new Colors alive");
}
