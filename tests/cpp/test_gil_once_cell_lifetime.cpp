// When a gil_once_cell is destroyed, its value is destroyed only if that is safe: the
// interpreter is alive and this thread holds the GIL. A `static` cell is destroyed at
// process exit, usually after Py_Finalize; decref'ing a Python object then touches freed
// interpreter state. These tests destroy cells in those situations, in a child process
// (one of them finalizes the interpreter), and check whether the value's destructor ran.
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>

#include <csignal>
#include <new>
#include <thread>

#include "harness/watchdog.hpp"

namespace {

// Stands for a stored Python object: it owns a reference, and says whether it was destroyed.
struct stored_object {
    static inline bool destroyed = false;
    gilonce::py_ref object;
    explicit stored_object(gilonce::py_ref o) : object(std::move(o)) {}
    stored_object(stored_object&&) = default;
    ~stored_object() {
        if (object) destroyed = true;
    }
};

using cell_type = gilonce::gil_once_cell<stored_object>;

// A cell in raw storage, so the test decides exactly when its destructor runs.
struct cell_in_storage {
    alignas(cell_type) unsigned char bytes[sizeof(cell_type)];
    cell_type* cell = new (bytes) cell_type("lifetime probe");
    void destroy() { cell->~cell_type(); }
};

void fill(cell_type& cell) {
    PyGILState_STATE s = PyGILState_Ensure();
    cell.get_or_init(gilonce::gil_token::assume_held(),
                     [] { return stored_object(gilonce::py_ref::steal(PyList_New(0))); });
    PyGILState_Release(s);
}

harness::scenario_result expect(bool destroyed, const char* situation) {
    if (stored_object::destroyed == destroyed) return harness::scenario_result::pass();
    return harness::scenario_result::fail(std::string(situation) + ": value was " +
                                          (stored_object::destroyed ? "" : "not ") + "destroyed");
}

}  // namespace

TEST_CASE("a cell destroyed after Py_Finalize leaks its value instead of decref'ing it") {
    auto out = harness::run_in_child([] {
        cell_in_storage storage;
        fill(*storage.cell);
        PyGILState_Ensure();
        if (Py_FinalizeEx() != 0) return harness::scenario_result::fail("Py_FinalizeEx failed");
        storage.destroy();  // what a static cell's destructor does at exit
        return expect(false, "after Py_Finalize");
    });
    INFO(out.summary());
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("a cell destroyed on a thread without the GIL leaks its value") {
    auto out = harness::run_in_child([] {
        cell_in_storage storage;
        fill(*storage.cell);
        std::thread([&] { storage.destroy(); }).join();  // this thread never took the GIL
        return expect(false, "without the GIL");
    });
    INFO(out.summary());
    CHECK(out.observed == harness::verdict::finished);
}

TEST_CASE("a cell destroyed with the GIL held on a live interpreter destroys its value") {
    auto out = harness::run_in_child([] {
        cell_in_storage storage;
        fill(*storage.cell);
        PyGILState_STATE s = PyGILState_Ensure();
        storage.destroy();
        PyGILState_Release(s);
        return expect(true, "with the GIL");
    });
    INFO(out.summary());
    CHECK(out.observed == harness::verdict::finished);
}

#if GILONCE_CHECKS
TEST_CASE("GILONCE_CHECKS builds refuse a gil_token made without the GIL") {
    auto out = harness::run_in_child([] {
        (void)gilonce::gil_token::assume_held();  // the child's main thread holds no GIL here
        return harness::scenario_result::pass("a token was made without the GIL");
    });
    INFO(out.summary());
    REQUIRE(out.observed == harness::verdict::crashed);
    CHECK(out.signal == SIGABRT);
    CHECK(out.child_stderr.find("the GIL is not held") != std::string::npos);
}
#endif
