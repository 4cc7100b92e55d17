// Shutdown and reload through the real binary: no connection is cut by either.

#include <signal.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <string>

#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t MiB = 1024 * 1024;

// A connect to `port` is refused (nothing listens there any more).
bool refused(std::uint16_t port) {
    int error = 0;
    Socket s = try_connect(port, error);
    return !s && error == ECONNREFUSED;
}

}  // namespace

TEST_CASE("SIGINT: a transfer in flight completes, new connects are refused, exit 0",
          "[lifecycle]") {
    constexpr std::size_t total_mib = 200;
    ScriptedServer backend([](Socket s) {
        for (std::size_t i = 0; i < total_mib; ++i) s.send_all(pattern(MiB, i));
    });
    ServiceSpec service = service_to({backend.port()});
    Fulcrum fulcrum = start_fulcrum({service});

    Socket client = connect_to(service.listen);
    Sha256 received;
    std::string first = client.read_exact(MiB);
    received.update(first);

    fulcrum.process().send_signal(SIGINT);
    REQUIRE(fulcrum.process().wait_for_output("closing listeners", 5s));
    CHECK(refused(service.listen));

    std::size_t total = first.size();
    for (std::string chunk; !(chunk = client.read_some()).empty();) {
        received.update(chunk);
        total += chunk.size();
    }
    Sha256 expected;
    for (std::size_t i = 0; i < total_mib; ++i) expected.update(pattern(MiB, i));
    CHECK(total == total_mib * MiB);
    CHECK(received.hex() == expected.hex());
    client.shutdown_write();  // the session ends when both sides are done
    CHECK(fulcrum.process().wait_exit(10s) == 0);
}

TEST_CASE("shutdown_timeout closes what is left, and fulcrum exits 0", "[lifecycle]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service}, "shutdown_timeout = \"300ms\"");
    Socket idle = connect_to(service.listen);
    idle.send_all("x");
    REQUIRE(idle.read_exact(1) == "x");

    fulcrum.process().send_signal(SIGTERM);
    CHECK(idle.read_until_closed() == 0);
    CHECK(fulcrum.process().wait_exit(10s) == 0);
    CHECK(fulcrum.process().output().find("end=shutdown") != std::string::npos);
}

TEST_CASE("a second signal exits at once", "[lifecycle]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service}, "shutdown_timeout = \"1h\"");
    Socket idle = connect_to(service.listen);
    idle.send_all("x");
    REQUIRE(idle.read_exact(1) == "x");

    fulcrum.process().send_signal(SIGTERM);
    REQUIRE(fulcrum.process().wait_for_output("closing listeners", 5s));
    CHECK(fulcrum.process().running());  // still draining the idle session
    fulcrum.process().send_signal(SIGINT);
    CHECK(fulcrum.process().wait_exit(5s).has_value());
    CHECK(fulcrum.process().output().find("second") != std::string::npos);
}
