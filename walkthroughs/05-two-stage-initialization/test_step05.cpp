// Step 05's Catch2 tests: recursive class attributes work; racing threads never see the
// type without its attributes; errors name the class and attribute and leave it retryable.
#include <catch2/catch.hpp>

#include <string>

#include "harness/scenario.hpp"
#include "scenarios.hpp"

using harness::verdict;

namespace {
harness::outcome play(const std::string& name) {
    for (const auto& s : step05::scenarios())
        if (s.name == name) return harness::play(s);
    FAIL("no scenario " << name);
    return {};
}
}  // namespace

TEST_CASE("step 05: recursive_attributes_work: Color.RED is a Color, and is Color.RED") {
    auto out = play("recursive_attributes_work");
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "Color.RED is a Color, Color.RED is Color.RED: step05.Color('red')");
}

TEST_CASE("step 05: racing_threads_never_see_missing_attributes") {
    auto out = play("racing_threads_never_see_missing_attributes");
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "A, B and C each got the complete type; published once; "
                        "the 4 Colors computed by A and C were released");
}

TEST_CASE("step 05: a factory's Python error names class and attribute, with the cause, retry works") {
    auto out = play("python_error_in_factory_names_class_and_attribute");
    INFO(out.summary() << "\n" << harness::format_timeline(out.events));
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "RuntimeError: cannot compute class attribute step05.FlakyColor.RED "
                        "(cause: ValueError: no red paint today); "
                        "the retry on the same thread computed and published them");
}

TEST_CASE("step 05: a factory's C++ exception is reported the same way") {
    auto out = play("cpp_exception_in_factory_names_class_and_attribute");
    INFO(out.summary());
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail == "RuntimeError: cannot compute class attribute step05.FlakyColor.RED "
                        "(cause: RuntimeError: C++ exception: no red paint today); "
                        "the retry on the same thread computed and published them");
}

TEST_CASE("step 05: stage 1 re-entry is a RuntimeError naming the type") {
    auto out = play("stage1_reentry_is_an_error");
    INFO(out.summary());
    REQUIRE(out.observed == verdict::finished);
    CHECK(out.detail.rfind("RuntimeError: gil_once_cell 'step05.BaseAskingColor': re-entrant initialization", 0) == 0);
}

TEST_CASE("step 05: every scenario gets its predicted verdict") {
    for (const auto& s : step05::scenarios()) {
        auto out = harness::play(s);
        INFO(s.name << ": " << out.summary());
        CHECK(out.observed == s.predicted);
        CHECK(harness::missing_details(s, out).empty());
    }
}
