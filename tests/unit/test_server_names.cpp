// Server names: their canonical form, and which service of a shared address takes one.
#include <catch2/catch.hpp>
#include <string>

#include "fulcrum/lb/server_name_router.hpp"
#include "fulcrum/proto/server_name.hpp"

using namespace fulcrum;

TEST_CASE("server names are lowercased, lose a trailing dot, and must be host names", "[sni]") {
    CHECK(normalize_server_name("API.Example.TEST.") == "api.example.test");
    CHECK(normalize_server_name("a_b-c.d1") == "a_b-c.d1");
    CHECK(normalize_server_name("localhost") == "localhost");
    for (const char* bad : {"", ".", "..", "a..", "a..b", ".a", "-a.b", "a-.b", "a b", "a/b",
                            "é.test", "*.a", "a.*"}) {
        INFO(bad);
        CHECK_FALSE(normalize_server_name(bad));
    }
    CHECK(normalize_server_name(std::string(63, 'a') + ".test"));
    CHECK_FALSE(normalize_server_name(std::string(64, 'a') + ".test"));
    std::string long_name;
    while (long_name.size() < 250) long_name += "abcdefghi.";
    CHECK_FALSE(normalize_server_name(long_name + "abcd"));

    CHECK(normalize_server_name_pattern("*") == "*");
    CHECK(normalize_server_name_pattern("*.Example.Test.") == "*.example.test");
    for (const char* bad : {"**", "*.", "*.*.a", "a.*.b", "*a.b", "*.-a"}) {
        INFO(bad);
        CHECK_FALSE(normalize_server_name_pattern(bad));
    }
}

TEST_CASE("an exact name beats the longest wildcard, which beats \"*\"", "[sni]") {
    ServerNameRouter router;
    router.add("api.example.test", 0);
    router.add("*.example.test", 1);
    router.add("*.apps.example.test", 2);
    router.add("*", 3);
    CHECK(router.route("api.example.test") == 0u);
    CHECK(router.route("www.example.test") == 1u);
    CHECK(router.route("a.b.example.test") == 1u);  // one label or more
    CHECK(router.route("x.apps.example.test") == 2u);
    CHECK(router.route("y.x.apps.example.test") == 2u);
    CHECK(router.route("apps.example.test") == 1u);  // the suffix alone: not *.apps
    CHECK(router.route("example.test") == 3u);       // nor *.example.test
    CHECK(router.route("other.test") == 3u);
    CHECK(router.route(std::nullopt) == 3u);  // no SNI
}

TEST_CASE("without \"*\", a name nothing claims has no route", "[sni]") {
    ServerNameRouter router;
    router.add("*.example.test", 7);
    CHECK(router.route("a.example.test") == 7u);
    CHECK_FALSE(router.route("example.test"));
    CHECK_FALSE(router.route("a.example.test.evil"));
    CHECK_FALSE(router.route(std::nullopt));
}
