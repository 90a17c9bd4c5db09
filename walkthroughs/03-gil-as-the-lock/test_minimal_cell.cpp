// Step 03's Catch2 tests of the small form, minimal_gil_once_cell: what its contract claims
// (one caller: the initializer runs once; two racing callers: both run, the first stored
// object is kept, the other released) and what it says it does not handle (re-entry runs the
// initializer again, nested; the object is never released), each seen, not assumed.
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "harness/gil.hpp"
#include "harness/scenario.hpp"
#include "minimal_gil_once_cell.hpp"
#include "scenarios.hpp"

using step03::minimal_gil_once_cell;

namespace {

// A new list, and one more reference to it in `kept`: the test reads its count afterwards.
PyObject* new_list_kept(PyObject*& kept) {
    kept = PyList_New(0);
    Py_XINCREF(kept);
    return kept;
}

}  // namespace

TEST_CASE("step 03: minimal cell, one thread: the initializer runs once, every later call gets the same object") {
    harness::traced_gil gil;
    minimal_gil_once_cell cell;
    PyObject* made = nullptr;
    int runs = 0;
    auto init = [&] {
        ++runs;
        return new_list_kept(made);
    };
    CHECK(cell.get() == nullptr);
    PyObject* first = cell.get_or_init(init);
    REQUIRE(made != nullptr);
    CHECK(first == made);
    CHECK(cell.get_or_init(init) == first);
    CHECK(cell.get_or_init(init) == first);
    CHECK(runs == 1);
    CHECK(Py_REFCNT(made) == 2);  // ours and the cell's
    Py_DECREF(made);              // the cell's reference stays: it is never released
}

TEST_CASE("step 03: minimal cell, two threads: both initializers ran, both got the first stored, the other released") {
    auto out = harness::run_in_child(step03::minimal_cell_keeps_the_first_stored);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == harness::verdict::finished);
    CHECK(out.detail ==
          "both initializers ran; A and B got B's list, the first stored; A's list was released (1 reference "
          "left: the scenario's), B's is held by the cell (2)");
}

TEST_CASE("step 03: minimal cell: a failing initializer leaves it empty with its exception set, the next call stores") {
    harness::traced_gil gil;
    minimal_gil_once_cell cell;
    PyObject* failed = cell.get_or_init([]() -> PyObject* {
        PyErr_SetString(PyExc_ValueError, "no value today");
        return nullptr;
    });
    CHECK(failed == nullptr);
    CHECK(PyErr_ExceptionMatches(PyExc_ValueError));
    PyErr_Clear();
    CHECK(cell.get() == nullptr);
    PyObject* made = nullptr;
    CHECK(cell.get_or_init([&] { return new_list_kept(made); }) == made);
    CHECK(made != nullptr);
    Py_XDECREF(made);
}

TEST_CASE("step 03: minimal cell: re-entry is not detected, the initializer runs again inside itself") {
    harness::traced_gil gil;
    minimal_gil_once_cell cell;
    PyObject* outer = nullptr;
    PyObject* inner = nullptr;
    int runs = 0;
    std::function<PyObject*()> init = [&]() -> PyObject* {
        const int run = ++runs;
        if (run == 1 && cell.get_or_init(init) == nullptr) return nullptr;  // asks for its own cell, once
        return new_list_kept(run == 1 ? outer : inner);
    };
    PyObject* got = cell.get_or_init(init);
    CHECK(runs == 2);  // no error: the nested call ran the initializer again
    REQUIRE(inner != nullptr);
    REQUIRE(outer != nullptr);
    CHECK(got == inner);               // the nested call stored first
    CHECK(Py_REFCNT(outer) == 1);      // the outer object lost and was released
    Py_DECREF(outer);
    Py_DECREF(inner);
}

TEST_CASE("step 03: minimal cell: destroying it leaves its reference behind (never released)") {
    harness::traced_gil gil;
    PyObject* made = nullptr;
    {
        minimal_gil_once_cell cell;
        cell.get_or_init([&] { return new_list_kept(made); });
    }
    REQUIRE(made != nullptr);
    CHECK(Py_REFCNT(made) == 2);  // ours and the destroyed cell's, leaked
    Py_DECREF(made);
}
