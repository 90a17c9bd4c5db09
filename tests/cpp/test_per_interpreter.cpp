// per_interpreter_cell, the form for state that must stay a C++ static, against the naive
// `static gil_once_cell` in the two situations it gets wrong: a sub-interpreter, and
// Py_Finalize followed by Py_Initialize. The value records which interpreter computed it
// (its id and a generation), so a value handed to the wrong interpreter is seen, not
// guessed. Each case runs in a forked child (it makes interpreters and finalizes them).
#include <catch2/catch.hpp>

#include <gilonce/gilonce.hpp>
#include <gilonce/per_interpreter.hpp>

#include <cstdio>
#include <string>

#include "harness/watchdog.hpp"

using harness::scenario_result;

namespace {

int generation = 1;      // incremented at each re-initialization in the child
long values_alive = 0;   // values constructed and not yet destroyed

// Which interpreter computed the value. Counted, so that release is seen.
struct made_by {
    long long interpreter_id;
    int generation;
    explicit made_by(long long id) : interpreter_id(id), generation(::generation) { ++values_alive; }
    made_by(made_by&& other) noexcept : interpreter_id(other.interpreter_id), generation(other.generation) {
        ++values_alive;
    }
    made_by(const made_by&) = delete;
    ~made_by() { --values_alive; }
};

made_by this_interpreter() { return made_by(PyInterpreterState_GetID(PyInterpreterState_Get())); }

std::string describe(const made_by& v) {
    return "interpreter " + std::to_string(v.interpreter_id) + ", generation " + std::to_string(v.generation);
}

gilonce::gil_once_cell<made_by> naive_static{"naive static"};               // BAD: one for the process
gilonce::per_interpreter_cell<made_by> per_interpreter{"per-interpreter"};  // one per interpreter

}  // namespace

TEST_CASE("per-interpreter: a sub-interpreter gets its own value, released when it ends, where a static cell leaks it across") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        PyThreadState* main_state = PyThreadState_Get();
        PyThreadState* sub = Py_NewInterpreter();
        if (sub == nullptr) return scenario_result::fail("Py_NewInterpreter failed");
        auto gil = gilonce::gil_token::assume_held();
        const made_by& sub_naive = naive_static.get_or_init(gil, this_interpreter);
        const made_by& sub_own = per_interpreter.get_or_init(gil, this_interpreter);
        const long long sub_id = sub_own.interpreter_id;
        const long alive_with_sub = values_alive;
        Py_EndInterpreter(sub);
        PyThreadState_Swap(main_state);
        const long alive_after_sub = values_alive;
        const made_by& main_naive = naive_static.get_or_init(gil, this_interpreter);
        const made_by& main_own = per_interpreter.get_or_init(gil, this_interpreter);
        const made_by& main_again = per_interpreter.get_or_init(gil, this_interpreter);  // the fast slot
        std::fprintf(stderr, "sub-interpreter %lld: static -> %s; main: static -> %s, per-interpreter -> %s (again: same %d); "
                     "values alive with the sub-interpreter %ld, after it ended %ld\n",
                     sub_id, describe(sub_naive).c_str(), describe(main_naive).c_str(), describe(main_own).c_str(),
                     &main_again == &main_own, alive_with_sub, alive_after_sub);
        if (main_naive.interpreter_id != sub_id) return scenario_result::fail("the naive static did not show its bug");
        if (main_own.interpreter_id != 0) return scenario_result::fail("main got another interpreter's value");
        if (&main_again != &main_own) return scenario_result::fail("a second read gave another value");
        if (alive_after_sub != alive_with_sub - 1)
            return scenario_result::fail("the sub-interpreter's value was not released when it ended");
        return scenario_result::pass("static: main got the ended sub-interpreter's value; per-interpreter: its own");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "static: main got the ended sub-interpreter's value; per-interpreter: its own");
}

TEST_CASE("per-interpreter: after Py_Finalize and Py_Initialize the value is computed again, where a static cell keeps the old one") {
    auto out = harness::run_in_child([] {
        PyGILState_Ensure();
        auto gil = gilonce::gil_token::assume_held();
        PyInterpreterState* first = PyInterpreterState_Get();
        (void)naive_static.get_or_init(gil, this_interpreter);
        (void)per_interpreter.get_or_init(gil, this_interpreter);
        (void)per_interpreter.get_or_init(gil, this_interpreter);  // the fast slot is this interpreter's
        const long alive_before = values_alive;
        if (Py_FinalizeEx() != 0) return scenario_result::fail("Py_FinalizeEx failed");
        const long alive_after_finalize = values_alive;
        ++generation;
        Py_Initialize();
        gil = gilonce::gil_token::assume_held();
        const bool same_address = PyInterpreterState_Get() == first;
        const made_by& naive = naive_static.get_or_init(gil, this_interpreter);
        const made_by& own = per_interpreter.get_or_init(gil, this_interpreter);
        std::fprintf(stderr, "re-initialized interpreter at the same address: %d; static -> %s; per-interpreter -> %s; "
                     "values alive before Py_Finalize %ld, after %ld\n",
                     same_address, describe(naive).c_str(), describe(own).c_str(), alive_before, alive_after_finalize);
        if (naive.generation != 1) return scenario_result::fail("the naive static did not show its bug");
        if (own.generation != 2) return scenario_result::fail("per-interpreter handed out the finalized interpreter's value");
        if (alive_after_finalize != alive_before - 1)
            return scenario_result::fail("Py_Finalize did not release the per-interpreter value");
        return scenario_result::pass("static: the old interpreter's value; per-interpreter: recomputed");
    });
    INFO(out.summary() << "\nchild stderr:\n" << out.child_stderr);
    CHECK(out.observed == harness::verdict::finished);
    CHECK(out.detail == "static: the old interpreter's value; per-interpreter: recomputed");
}
