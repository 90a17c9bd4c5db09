// Step 07's Catch2 tests: each scenario's observed verdict and every predicted detail. The
// naive protocol must be seen storing twice; py_once_lock and lazy_type must hold.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "harness/scenario.hpp"
#include "scenarios.hpp"
#include "trail_replay.hpp"

using harness::verdict;

namespace {
const harness::scenario& find(const std::string& name) {
    for (const auto& s : step07::scenarios())
        if (s.name == name) return s;
    throw std::logic_error("no scenario " + name);
}

// Plays `name` and checks its verdict and every predicted detail.
void check(const std::string& name, verdict expected) {
    const harness::scenario& s = find(name);
    REQUIRE(s.predicted == expected);
    auto out = harness::play(s);
    INFO(out.summary() << "\n" << harness::format_timeline(out.events) << "\nchild stderr:\n" << out.child_stderr);
    REQUIRE(out.observed == expected);
    for (const auto& missing : harness::missing_details(s, out)) FAIL_CHECK("missing detail: " << missing);
}
}  // namespace

TEST_CASE("step 07: gil_once_cell's protocol without a GIL stores twice in SPIN's interleaving") {
    check("gil_cell_protocol_without_gil_stores_twice", verdict::wrong_result);
}

TEST_CASE("step 07: py_once_lock in step 02's race builds once, B waiting without the GIL") {
    check("py_once_lock_step02_race_builds_once", verdict::finished);
}

TEST_CASE("step 07: a re-entrant py_once_lock initializer gets a RuntimeError naming the cell") {
    check("py_once_lock_reentry_is_an_error", verdict::finished);
}

TEST_CASE("step 07: a failing py_once_lock initializer leaves it empty and one waiter retries") {
    check("py_once_lock_failure_one_waiter_retries", verdict::finished);
}

TEST_CASE("step 07: mutual class attributes A/B from two threads at once do not deadlock") {
    check("mutual_class_attributes_from_two_threads", verdict::finished);
}

// The replay's steps file is data: a malformed one is refused, naming its line, before any
// thread is ordered by it (a wrong thread name would otherwise leave both threads waiting).
TEST_CASE("step 07: a malformed trail is refused when read, naming the line") {
    using step07::parse_trail;
    const auto refuses = [](const std::string& text, const std::string& why) {
        try {
            parse_trail(text);
        } catch (const std::invalid_argument& e) {
            const std::string message = e.what();
            INFO(message);
            CHECK(message.find(why) != std::string::npos);
            return;
        }
        FAIL("accepted: " << text);
    };
    refuses("3 a fast_check\n", "a thread other than A or B: 3 a fast_check");
    refuses("3 A run_jnit\n", "a step unlocked_cell.hpp does not have: 3 A run_jnit");
    refuses("3 A fast_check extra\n", "not \"number thread step\": 3 A fast_check extra");
    refuses("3 A\n", "not \"number thread step\": 3 A");
    refuses("4 A fast_check\n3 B fast_check\n", "does not follow the one before it: 3 B fast_check");
    refuses("# only a comment\n", "the trail has no step");
    CHECK(parse_trail("3 A fast_check\n# note\n4 A run_init\n").size() == 2);
}
