#include <catch2/catch.hpp>

#include "fulcrum/health/health.hpp"
#include "fulcrum/lb/backend.hpp"

using namespace fulcrum;
using Change = HealthTracker::Change;

TEST_CASE("a backend starts up and goes down after `fall` consecutive failures") {
    HealthTracker tracker(/*rise=*/2, /*fall=*/3);
    CHECK(tracker.up());
    CHECK(tracker.record(false) == Change::none);
    CHECK(tracker.record(false) == Change::none);
    CHECK(tracker.record(true) == Change::none);  // a success breaks the streak
    CHECK(tracker.record(false) == Change::none);
    CHECK(tracker.record(false) == Change::none);
    CHECK(tracker.up());
    CHECK(tracker.record(false) == Change::went_down);
    CHECK_FALSE(tracker.up());
    CHECK(tracker.record(false) == Change::none);
}

TEST_CASE("a down backend comes back after `rise` consecutive successes") {
    HealthTracker tracker(/*rise=*/2, /*fall=*/1);
    CHECK(tracker.record(false) == Change::went_down);
    CHECK(tracker.record(true) == Change::none);
    CHECK(tracker.record(false) == Change::none);  // a failure breaks the streak
    CHECK(tracker.record(true) == Change::none);
    CHECK_FALSE(tracker.up());
    CHECK(tracker.record(true) == Change::went_up);
    CHECK(tracker.up());
}

TEST_CASE("force_down takes an up backend down until `rise` successes") {
    HealthTracker tracker(/*rise=*/3, /*fall=*/3);
    CHECK(tracker.force_down() == Change::went_down);
    CHECK(tracker.force_down() == Change::none);
    CHECK(tracker.record(true) == Change::none);
    CHECK(tracker.record(true) == Change::none);
    CHECK(tracker.record(true) == Change::went_up);
}

TEST_CASE("passive detection: max_failures within the window take a backend out") {
    PassiveConfig passive;
    passive.max_failures = 3;
    passive.window = std::chrono::seconds(10);
    passive.cooldown = std::chrono::seconds(30);
    Backend backend("b", 1);
    const std::int64_t t0 = 1'000'000;

    SECTION("failures spread wider than the window never trip it") {
        CHECK_FALSE(backend.record_connect_failure(t0, passive));
        CHECK_FALSE(backend.record_connect_failure(t0 + 5'000, passive));
        CHECK_FALSE(backend.record_connect_failure(t0 + 10'001, passive));  // new window
        CHECK_FALSE(backend.record_connect_failure(t0 + 12'000, passive));
        CHECK(backend.out_until_ms.load() == 0);
        CHECK_FALSE(backend.passive_tripped.load());
    }
    SECTION("three within the window trip it for the cooldown") {
        CHECK_FALSE(backend.record_connect_failure(t0, passive));
        CHECK_FALSE(backend.record_connect_failure(t0 + 1'000, passive));
        CHECK(backend.record_connect_failure(t0 + 2'000, passive));
        CHECK(backend.out_until_ms.load() == t0 + 2'000 + 30'000);
        CHECK(backend.passive_tripped.load());
        // The count starts over: one more failure does not extend the cooldown.
        CHECK_FALSE(backend.record_connect_failure(t0 + 3'000, passive));
        CHECK(backend.out_until_ms.load() == t0 + 32'000);
    }
}

TEST_CASE("eligibility follows routing, drain and the passive cooldown") {
    Backend backend("b", 1);
    CHECK(backend.eligible());
    backend.routable = false;
    CHECK_FALSE(backend.eligible());
    backend.routable = true;
    backend.drained = true;
    CHECK_FALSE(backend.eligible());
    backend.drained = false;
    // Checks that find it down do not stop traffic that routing lets through (fail-open).
    backend.check_up = false;
    CHECK(backend.eligible());
    CHECK_FALSE(backend.passes_checks());
    backend.check_up = true;
    backend.out_until_ms = steady_now_ms() + 60'000;
    CHECK_FALSE(backend.eligible());
    backend.out_until_ms = steady_now_ms() - 1;  // the cooldown is over
    CHECK(backend.eligible());
}
