// The descriptor limit against the configuration: what is needed, and the soft limit
// raised in this very process (restored afterwards).

#include <sys/resource.h>

#include <catch2/catch.hpp>

#include "fulcrum/descriptor_limit.hpp"

using namespace fulcrum;

TEST_CASE("descriptors needed: two per connection and per pipe, listeners, a margin",
          "[descriptor_limit]") {
    Config config;
    config.runtime.max_connections = 1000;
    config.runtime.splice_pipes = 100;
    config.services.resize(3);
    CHECK(descriptors_needed(config, 2) == 2000 + 200 + 6 + 64);
}

TEST_CASE("the soft descriptor limit is raised up to the hard limit, never lowered",
          "[descriptor_limit]") {
    rlimit original{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &original) == 0);
    if (original.rlim_max != RLIM_INFINITY && original.rlim_max < 600) {
        WARN("the hard descriptor limit (" << original.rlim_max << ") leaves no room to test");
        return;
    }
    rlimit lowered = original;
    lowered.rlim_cur = 300;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    auto soft = [] {
        rlimit now{};
        getrlimit(RLIMIT_NOFILE, &now);
        return now.rlim_cur;
    };

    ensure_descriptor_limit(400);
    CHECK(soft() == 400);
    ensure_descriptor_limit(100);
    CHECK(soft() == 400);  // never lower
    if (original.rlim_max != RLIM_INFINITY) {
        ensure_descriptor_limit(original.rlim_max + 1);
        CHECK(soft() == original.rlim_max);  // as far as the hard limit allows
    }
    REQUIRE(setrlimit(RLIMIT_NOFILE, &original) == 0);
}
