#include <catch2/catch.hpp>

#include <limits>

#include "fulcrum/config/duration.hpp"

using fulcrum::Duration;
using fulcrum::format_duration;
using fulcrum::parse_duration;
using namespace std::chrono_literals;

TEST_CASE("durations with units parse", "[duration]") {
    CHECK(parse_duration("250ms") == Duration(250ms));
    CHECK(parse_duration("2s") == Duration(2s));
    CHECK(parse_duration("1m30s") == Duration(90s));
    CHECK(parse_duration("1h") == Duration(1h));
    CHECK(parse_duration("0s") == Duration(0));
    CHECK(parse_duration("1h2m3s4ms") == Duration(1h + 2min + 3s + 4ms));
    CHECK(parse_duration("90s") == Duration(90s));
    CHECK(parse_duration("5m") == Duration(5min));
}

TEST_CASE("malformed durations are rejected", "[duration]") {
    for (const char* text :
         {"", "30", "2", "s", "ms", "2x", "2 s", " 2s", "2s ", "-2s", "+2s", "1.5s", "2S", "2sec",
          "1m30", "s2", "2ss",
          // Larger than the milliseconds type holds.
          "9223372036854775808ms", "2562047788016h", "2562047788015h1h", "99999999999999999999h"}) {
        INFO("text: \"" << text << "\"");
        CHECK_FALSE(parse_duration(text).has_value());
    }
}

TEST_CASE("the largest duration still parses", "[duration]") {
    CHECK(parse_duration("9223372036854775807ms") == Duration::max());
}

TEST_CASE("durations format in the shortest form", "[duration]") {
    CHECK(format_duration(0ms) == "0s");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(2s) == "2s");
    CHECK(format_duration(90s) == "1m30s");
    CHECK(format_duration(5min) == "5m");
    CHECK(format_duration(1h + 1ms) == "1h1ms");
    CHECK(format_duration(1500ms) == "1s500ms");
    CHECK(format_duration(-2s) == "-2s");
}

TEST_CASE("formatted durations parse back to the same value", "[duration]") {
    for (const Duration d :
         {Duration(0), Duration(1), Duration(999), Duration(1000), Duration(61'001),
          Duration(3'600'000), Duration(90'061'001), Duration::max()}) {
        INFO("ms: " << d.count());
        CHECK(parse_duration(format_duration(d)) == d);
    }
}
