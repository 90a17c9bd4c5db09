// lazy_type's two protocols for stage 1, told apart by what a second thread does while the
// first thread's stage 1 has released the GIL. Built into reference_tests (the GIL branch:
// stage 1 in a gil_once_cell, so the second thread builds a type of its own, which is
// dropped) and into lazy_type_ft_protocol_tests (GILONCE_FREE_THREADED_PROTOCOL=1: stage 1 in
// a py_once_lock, so the second thread waits for the first, detached). That the expected
// behaviour is seen is what shows which protocol the binary really ran.
#include <catch2/catch.hpp>

#include <gilonce/lazy_type.hpp>

#include <atomic>
#include <string>

#include "harness/event.hpp"
#include "harness/gil.hpp"
#include "harness/threads.hpp"
#include "harness/watchdog.hpp"

using harness::scenario_result;

namespace {
PyType_Slot plain_slots[] = {{Py_tp_doc, const_cast<char*>("A type built in stage 1, for tests.")}, {0, nullptr}};
PyType_Spec stage_one_spec = {"lazytest.StageOne", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, plain_slots};

std::atomic<int> stage_one_runs{0};
harness::event* a_released = nullptr;  // set by A inside its bases factory, GIL released
harness::event* b_asks = nullptr;      // set by B just before it asks for the type
std::atomic<bool> b_returned{false};
bool b_was_inside_when_a_came_back = false;

gilonce::lazy_type stage_one_type(&stage_one_spec, {}, [](gilonce::gil_token) -> PyObject* {
    ++stage_one_runs;
    if (std::string(harness::thread_name()) == "A") {
        harness::without_gil([] {  // where a real bases factory might import
            a_released->set();
            b_asks->wait();
        });
        // A has the GIL back. Under the free-threaded protocol B is still inside get(),
        // waiting detached; under the GIL branch it ran a stage 1 of its own and returned.
        b_was_inside_when_a_came_back = !b_returned;
    }
    Py_INCREF(&PyBaseObject_Type);
    return reinterpret_cast<PyObject*>(&PyBaseObject_Type);
});
}  // namespace

TEST_CASE("lazy_type protocols: a caller during another thread's stage 1 builds its own type (GIL branch) or "
          "waits for it, detached (free-threaded protocol)") {
    auto out = harness::run_in_child([] {
        harness::event released("A released the GIL in its bases factory"), asks("B asks for the type");
        a_released = &released;
        b_asks = &asks;
        PyTypeObject* got[2] = {nullptr, nullptr};
        harness::run_threads({
            {"A", [&](gilonce::gil_token gil) { got[0] = stage_one_type.get(gil); }},
            {"B", [&](gilonce::gil_token gil) {
                 harness::without_gil([] { a_released->wait(); });
                 b_asks->set();
                 got[1] = stage_one_type.get(gil);
                 b_returned = true;
             }},
        });
        if (got[0] == nullptr || got[0] != got[1]) return scenario_result::fail("A and B got different types");
        return scenario_result::pass(std::to_string(stage_one_runs.load()) + " stage 1 runs; B " +
                                     (b_was_inside_when_a_came_back ? "was still waiting" : "had returned") +
                                     " when A took the GIL back; both got the same type");
    });
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == harness::verdict::finished);
    if (GILONCE_DETAIL_NO_GIL_PROTOCOL)
        CHECK(out.detail == "1 stage 1 runs; B was still waiting when A took the GIL back; both got the same type");
    else
        CHECK(out.detail == "2 stage 1 runs; B had returned when A took the GIL back; both got the same type");
}
