// Step 01's Catch2 tests: the bug happens, deterministically, and is seen by looking at the
// type's flags; one scenario uses the unready type, and the child is seen to crash. The scenarios themselves are in scenarios.cpp.
#include <catch2/catch.hpp>

#include <csignal>

#include "harness/scenario.hpp"
#include "scenarios.hpp"

using harness::verdict;

TEST_CASE("step 01: a single caller gets a ready type (the bug hides)") {
    auto out = harness::run_in_child(step01::single_caller_gets_ready_type);
    INFO(out.summary());
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail.find("got the type: ready") != std::string::npos);
}

TEST_CASE("step 01: reentrant_call_sees_unready_type") {
    auto out = harness::run_in_child(step01::reentrant_call_sees_unready_type);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::wrong_result);
    CHECK(out.detail.find("re-entrant call from RED's factory got a type that is not ready") != std::string::npos);
    CHECK(out.detail.find("Py_TPFLAGS_READY unset, no tp_dict") != std::string::npos);
}

TEST_CASE("step 01: second_thread_sees_unready_type") {
    auto out = harness::run_in_child(step01::second_thread_sees_unready_type);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::wrong_result);
    CHECK(out.detail.find("thread B got a type that is not ready (Py_TPFLAGS_READY unset, no tp_dict)") !=
          std::string::npos);
}

TEST_CASE("step 01: using_the_unready_type_crashes") {
    auto out = harness::run_in_child(step01::using_the_unready_type_crashes);
    INFO(out.summary() << "\n" << out.child_stderr);
    REQUIRE(out.observed == verdict::crashed);  // a signal, seen by waitpid
    CHECK((out.signal == SIGSEGV || out.child_stderr.find("SEGV on unknown address") != std::string::npos));
}

TEST_CASE("step 01: failed_build_leaves_the_flag_set") {
    auto out = harness::run_in_child(step01::failed_build_leaves_the_flag_set);
    INFO(out.summary());
    REQUIRE(out.observed == verdict::wrong_result);
    CHECK(out.detail.find("the retry after a failed build got a type that is not ready") != std::string::npos);
}

TEST_CASE("step 01: every scenario gets its predicted verdict") {
    for (const auto& s : step01::scenarios()) {
        auto out = harness::play(s);
        INFO(s.name << ": " << out.summary());
        CHECK(out.observed == s.predicted);
        CHECK(harness::missing_details(s, out).empty());
    }
}
