// The harness's own rules: which child output counts as a sanitizer report, and what of
// it a failing test shows; which ports free_port hands out.

#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>

#include "harness.hpp"

using namespace fulcrum::test;

TEST_CASE("sanitizer reports are found in a child's output, from their first line", "[harness]") {
    CHECK_FALSE(sanitizer_report("listening on 127.0.0.1:80\nThreadSanitizer: ok\n"));

    const std::string tsan =
        "info: started\n"
        "==================\n"
        "WARNING: ThreadSanitizer: data race (pid=7)\n"
        "  Write of size 8 at 0x1 by thread T1:\n"
        "SUMMARY: ThreadSanitizer: data race src/listener.cpp:127 in accept\n"
        "==================\n"
        "info: more\n";
    CHECK(sanitizer_report(tsan) ==
          "WARNING: ThreadSanitizer: data race (pid=7)\n"
          "  Write of size 8 at 0x1 by thread T1:\n"
          "SUMMARY: ThreadSanitizer: data race src/listener.cpp:127 in accept\n");

    const std::string ubsan = "../src/a.cpp:3:9: runtime error: signed integer overflow\n";
    CHECK(sanitizer_report(ubsan) == ubsan);
    CHECK(sanitizer_report("==1==ERROR: AddressSanitizer: heap-use-after-free\n") ==
          "==1==ERROR: AddressSanitizer: heap-use-after-free\n");
    // Without a SUMMARY line the excerpt runs on (at most 40 lines).
    const std::string leak = "==1==ERROR: LeakSanitizer: detected memory leaks\n";
    CHECK(sanitizer_report(ubsan + leak) ==
          ubsan + leak + "(2 sanitizer reports in this output)\n");
}

TEST_CASE("free_port never repeats a port and never offers one the kernel picks for a connect",
          "[harness]") {
    unsigned ephemeral_first = 0;
    unsigned ephemeral_last = 0;
    std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_first >> ephemeral_last;
    REQUIRE(ephemeral_last > 0);
    std::set<std::uint16_t> ports;
    for (int i = 0; i < 2000; ++i) {
        const std::uint16_t port = free_port();
        INFO("port " << port);
        REQUIRE((port < ephemeral_first || port > ephemeral_last));
        REQUIRE(ports.insert(port).second);
    }
}
