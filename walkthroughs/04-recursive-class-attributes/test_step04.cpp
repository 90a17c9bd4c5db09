// Step 04's Catch2 tests: the recursive class attribute is reported as a clear error that
// names the class and the attribute; without it, the one-stage build works.
#include <catch2/catch.hpp>

#include <string>

#include "harness/scenario.hpp"
#include "scenarios.hpp"

using harness::verdict;

TEST_CASE("step 04: recursive_attribute_is_a_clear_error names step04.Color.RED, caused by the re-entrancy") {
    auto out = harness::run_in_child(step04::recursive_attribute_is_a_clear_error);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail.rfind("RuntimeError: cannot compute class attribute step04.Color.RED; caused by "
                           "RuntimeError: gil_once_cell 'step04.Color': re-entrant initialization", 0) == 0);
}

TEST_CASE("step 04: attributes_that_are_not_colors_work") {
    auto out = harness::run_in_child(step04::attributes_that_are_not_colors_work);
    INFO(out.summary());
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "step04.Color built; DEFAULT_NAME = red");
}

TEST_CASE("step 04: every scenario gets its predicted verdict") {
    for (const auto& s : step04::scenarios()) {
        auto out = harness::play(s);
        INFO(s.name << ": " << out.summary());
        CHECK(out.observed == s.predicted);
        CHECK(harness::missing_details(s, out).empty());
    }
}
