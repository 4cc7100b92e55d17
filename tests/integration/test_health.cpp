// Health through the real binary: active probes take backends out and bring them back,
// a hanging probe delays no other, passive detection works without probes, and the
// all_unhealthy modes do what they say.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

// A backend that answers every request with `status` and counts the requests.
struct StatusBackend {
    explicit StatusBackend(int status)
        : server([this, status](Socket s) {
              s.read_some();
              ++requests;
              s.send_all("HTTP/1.1 " + std::to_string(status) +
                         " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          }) {}
    std::atomic<int> requests{0};
    ScriptedServer server;
};

const std::string fast_probes = "interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 2\nfall = 2";

}  // namespace

TEST_CASE("a backend failing its probes gets no new connections until it recovers", "[health]") {
    DemoBackend alpha("alpha");
    DemoBackend beta("beta");
    ServiceSpec service = service_to({alpha.port(), beta.port()});
    service.health = fast_probes;
    Fulcrum fulcrum = start_fulcrum({service});

    set_health(alpha, false);
    REQUIRE(fulcrum.process().wait_for_output("backend b0 is down (was up): status 503", 5s));
    for (int i = 0; i < 6; ++i) CHECK(http_get(connect_to(service.listen), "/") == "beta\n");

    set_health(alpha, true);
    REQUIRE(fulcrum.process().wait_for_output("backend b0 is up (was down): status 200", 5s));
    std::set<std::string> names;
    for (int i = 0; i < 4; ++i) names.insert(http_get(connect_to(service.listen), "/"));
    CHECK(names == std::set<std::string>{"alpha\n", "beta\n"});
}

TEST_CASE("a backend starts up: it serves before its first probes fail", "[health]") {
    DemoBackend alpha("alpha");
    set_health(alpha, false);
    ServiceSpec service = service_to({alpha.port()});
    service.health = "interval = \"10s\"\ntimeout = \"1s\"\nfall = 3";  // 20 s to go down
    Fulcrum fulcrum = start_fulcrum({service});
    CHECK(http_get(connect_to(service.listen), "/") == "alpha\n");
}

TEST_CASE("status 500 and 404 count as failed probes", "[health]") {
    StatusBackend error(500);
    StatusBackend missing(404);
    StatusBackend fine(204);
    ServiceSpec service =
        service_to({error.server.port(), missing.server.port(), fine.server.port()});
    // A timeout with room: one probe of b2 slower than it, on a busy machine, would take
    // b2 down (fall = 1).
    service.health = "interval = \"500ms\"\ntimeout = \"400ms\"\nfall = 1";
    Fulcrum fulcrum = start_fulcrum({service});
    CHECK(fulcrum.process().wait_for_output("backend b0 is down (was up): status 500", 5s));
    CHECK(fulcrum.process().wait_for_output("backend b1 is down (was up): status 404", 5s));
    CHECK(poll_until([&] { return fine.requests.load() >= 2; }, 5s));
    CHECK(fulcrum.process().output().find("backend b2 is down") == std::string::npos);
}

TEST_CASE("hanging health endpoints delay no other backend's probes", "[health]") {
    // Four backends that accept and never answer: each probe waits its full timeout.
    auto hang = [](Socket s) { s.read_until_closed(); };
    ScriptedServer h0(hang), h1(hang), h2(hang), h3(hang);
    StatusBackend fine(200);
    ServiceSpec service =
        service_to({h0.port(), h1.port(), h2.port(), h3.port(), fine.server.port()});
    service.health = "interval = \"500ms\"\ntimeout = \"400ms\"\nfall = 1";
    Fulcrum fulcrum = start_fulcrum({service});

    // Probes one after another would take 4 x 400 ms per round: 5 probes of the healthy
    // backend would need about 8 s. Concurrent probes take about 2.5 s.
    CHECK(poll_until([&] { return fine.requests.load() >= 5; }, 5s));
    CHECK(fulcrum.process().wait_for_output("backend b3 is down (was up): timeout", 5s));
}

TEST_CASE("with active checks off, passive detection skips a dead backend", "[health]") {
    EchoServer echo;
    ServiceSpec service = service_to({free_port(), echo.port()}, "retries = 1");
    service.passive = "max_failures = 2\nwindow = \"10s\"\ncooldown = \"1m\"";
    Fulcrum fulcrum = start_fulcrum({service});
    for (int i = 0; i < 8; ++i) {
        Transfer t = echo_through(service.listen, 1024);
        CHECK(t.received_hash == t.sent_hash);
    }
    CHECK(fulcrum.process().wait_for_output(
        "backend b0 taken out for 1m: 2 connect failures within 10s", 5s));
    CHECK(count_of(fulcrum.process().output(), "connect to b0 failed") == 2);
}

TEST_CASE("all backends down: refuse applies on_failure, fail-open still serves", "[health]") {
    DemoBackend alpha("alpha");
    DemoBackend beta("beta");
    ServiceSpec refuse =
        service_to({alpha.port(), beta.port()}, "on_failure = \"close\"", "refuse");
    refuse.health = fast_probes + "\nall_unhealthy = \"refuse\"";
    ServiceSpec open = service_to({alpha.port(), beta.port()}, "", "open");
    open.health = fast_probes + "\nall_unhealthy = \"fail-open\"";
    Fulcrum fulcrum = start_fulcrum({refuse, open});

    set_health(alpha, false);
    set_health(beta, false);
    REQUIRE(fulcrum.process().wait_for_output("service refuse: every backend is down", 5s));
    REQUIRE(fulcrum.process().wait_for_output("service open: every backend is down", 5s));

    Socket refused = connect_to(refuse.listen);
    refused.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(refused.read_to_eof().empty());
    const std::string name = http_get(connect_to(open.listen), "/");
    CHECK((name == "alpha\n" || name == "beta\n"));
}

TEST_CASE("fail-open: status and metrics show the backends down while traffic flows to them",
          "[health]") {
    DemoBackend alpha("alpha");
    ServiceSpec open = service_to({alpha.port()}, "", "open");
    open.health = fast_probes + "\nall_unhealthy = \"fail-open\"";
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum(
        config_for({open}) + "[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin) + "\"\n",
        {open.listen, admin});
    set_health(alpha, false);
    REQUIRE(fulcrum.process().wait_for_output("service open: every backend is down", 5s));

    CHECK(http_get(connect_to(open.listen), "/") == "alpha\n");
    const auto status = nlohmann::json::parse(http_get(connect_to(admin), "/status"));
    const auto& backend = status["services"][0]["backends"][0];
    CHECK(backend["health"] == "down");
    CHECK(backend["eligible"] == true);
    const std::string metrics = http_get(connect_to(admin), "/metrics");
    CHECK(metrics.find("fulcrum_backend_healthy{service=\"open\",backend=\"b0\"} 0") !=
          std::string::npos);
}
