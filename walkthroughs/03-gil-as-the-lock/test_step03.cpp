// Step 03's Catch2 tests: the race of step 02 finishes with one type object, built twice;
// recursion is a clear error, not a hang; and the cell recovers from it.
#include <catch2/catch.hpp>

#include <string>

#include "harness/scenario.hpp"
#include "scenarios.hpp"

using harness::verdict;

TEST_CASE("step 03: two_threads_share_one_type: no deadlock, one type kept, the other released") {
    auto out = harness::run_in_child(step03::two_threads_share_one_type);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail ==
          "both threads got the same type object, built 2 times; kept: the one B built; the other was released");
}

TEST_CASE("step 03: reentrant_call_is_a_clear_error naming the type, then a retry works") {
    auto out = harness::run_in_child(step03::reentrant_call_is_a_clear_error);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail.rfind("RuntimeError: gil_once_cell 'step03.Color': re-entrant initialization", 0) == 0);
    CHECK(out.detail.find("the next call built the type") != std::string::npos);
}

TEST_CASE("step 03: every scenario gets its predicted verdict") {
    for (const auto& s : step03::scenarios()) {
        auto out = harness::play(s);
        INFO(s.name << ": " << out.summary());
        CHECK(out.observed == s.predicted);
        CHECK(harness::missing_details(s, out).empty());
    }
}
