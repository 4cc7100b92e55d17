// Hostile health endpoints through the real binary: a probe ends at its timeout whatever
// the peer does, reads only the status line and headers (a few KiB at most), and a reload
// that adds hanging backends delays no other backend's probes.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t MiB = 1024 * 1024;
constexpr long rss_bound_kib = 32 * 1024;  // what a probe may add to fulcrum's memory

// Answers a probe with `head`, then sends one more byte every 0.5 s until the probe hangs
// up (or a minute has passed, so that the peer's lifetime is bounded).
struct DribblingHealth {
    explicit DribblingHealth(std::string head)
        : server([head = std::move(head)](Socket s) {
              s.read_some();
              s.send_all(head);
              const auto give_up = std::chrono::steady_clock::now() + 60s;
              while (std::chrono::steady_clock::now() < give_up) {
                  s.send_all("x");
                  std::this_thread::sleep_for(500ms);
              }
          }) {}
    ScriptedServer server;
};

// Answers a probe with `head`, then repeats `unit` as fast as the probe reads, up to
// `limit` bytes; records how much it sent and whether the probe stopped reading (a send
// failed because the probe closed its socket).
struct FloodingHealth {
    FloodingHealth(std::string head, std::string unit, std::size_t limit)
        : server([this, head = std::move(head), unit = std::move(unit), limit](Socket s) {
              s.read_some();
              try {
                  s.send_all(head);
                  while (sent < limit) {
                      s.send_all(unit);
                      sent += unit.size();
                  }
              } catch (const std::exception&) {
                  client_stopped = true;
              }
          }) {}
    std::atomic<std::size_t> sent{0};
    std::atomic<bool> client_stopped{false};
    ScriptedServer server;
};

// Waits until the peers see the probes stop reading (`stopped`), 10 s at most, checking
// that fulcrum's RSS (VmRSS) stays meanwhile within rss_bound_kib of what it is at the call.
void require_stopped_in_bounded_memory(Fulcrum& fulcrum, const std::function<bool()>& stopped) {
    const long baseline = fulcrum.process().rss_kib();
    long max_rss = baseline;
    const bool done = poll_until(
        [&] {
            max_rss = std::max(max_rss, fulcrum.process().rss_kib());
            return stopped();
        },
        10s, 5ms);
    CHECK(max_rss - baseline < rss_bound_kib);
    REQUIRE(done);
}

}  // namespace

TEST_CASE("a probe ends at its timeout however slowly the endpoint answers", "[health][fault]") {
    // b0 never finishes its headers; b1 finishes them and dribbles its body.
    DribblingHealth slow_headers("HTTP/1.1 200 OK\r\nX-Slow: ");
    DribblingHealth slow_body("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    ServiceSpec service = service_to({slow_headers.server.port(), slow_body.server.port()});
    service.health = "interval = \"1500ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 2";
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    // fall x (interval + timeout), plus slack for a loaded machine.
    REQUIRE(fulcrum.process().wait_for_output("backend b0 is down (was up): timeout", 8s));
    const nlohmann::json check = backend_status(admin, 0)["last_check"];
    INFO(check.dump());
    CHECK(check["result"] == "failed");
    CHECK(check["detail"] == "timeout");
    CHECK(check["duration_seconds"].get<double>() >= 0.9);
    CHECK(check["duration_seconds"].get<double>() < 1.5);

    // Only the status matters: the body is never waited for.
    REQUIRE(poll_until([&] { return !backend_status(admin, 1)["last_check"].is_null(); }, 5s));
    const nlohmann::json passed = backend_status(admin, 1)["last_check"];
    INFO(passed.dump());
    CHECK(passed["result"] == "passed");
    CHECK(passed["detail"] == "status 200");
    CHECK(passed["duration_seconds"].get<double>() < 0.5);
    CHECK(fulcrum.process().output().find("backend b1 is down") == std::string::npos);
}

TEST_CASE("a probe reads no body: a huge one costs fulcrum no memory", "[health][fault]") {
    DemoBackend first("first");
    FloodingHealth huge(
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(512 * MiB) + "\r\n\r\n",
        std::string(64 * 1024, 'b'), 512 * MiB);
    ServiceSpec service = service_to({first.port(), huge.server.port()});
    // b1's first probe comes half an interval after the start, after the baseline: 5 s
    // leaves room for a slow start (sanitizers, tests running side by side).
    service.health = "interval = \"10s\"\ntimeout = \"1s\"";
    Fulcrum fulcrum = start_fulcrum({service});
    REQUIRE(huge.server.accepted() == 0);
    require_stopped_in_bounded_memory(fulcrum, [&] { return huge.client_stopped.load(); });
    CHECK(huge.sent < 64 * MiB);
    CHECK(fulcrum.process().wait_for_output("backend b1: probe passed: status 200", 5s));
}

TEST_CASE("a probe reads a few KiB of headers at most", "[health][fault]") {
    DemoBackend first("first");
    FloodingHealth endless_line("HTTP/1.1 200 OK\r\nX-Endless: ", std::string(64 * 1024, 'a'),
                                64 * MiB);
    std::string lines;
    for (int i = 0; i < 4096; ++i) lines += "X-Header: value\r\n";
    FloodingHealth endless_headers("HTTP/1.1 200 OK\r\n", lines, 64 * MiB);
    ServiceSpec service =
        service_to({first.port(), endless_line.server.port(), endless_headers.server.port()});
    // b1 and b2 are first probed a third and two thirds of an interval after the start
    // (3.3 s and 6.7 s), after the baseline.
    service.health = "interval = \"10s\"\ntimeout = \"1s\"\nfall = 1";
    Fulcrum fulcrum = start_fulcrum({service});
    REQUIRE(endless_line.server.accepted() == 0);
    require_stopped_in_bounded_memory(fulcrum, [&] {
        return endless_line.client_stopped.load() && endless_headers.client_stopped.load();
    });
    CHECK(endless_line.sent < 64 * MiB);
    CHECK(endless_headers.sent < 64 * MiB);
    const std::string too_long = "response headers longer than 16384 bytes";
    CHECK(fulcrum.process().wait_for_output("backend b1 is down (was up): " + too_long, 5s));
    CHECK(fulcrum.process().wait_for_output("backend b2 is down (was up): " + too_long, 5s));
}

TEST_CASE("a reload adding hanging backends delays no other backend's probes", "[health][fault]") {
    std::atomic<int> probes{0};
    ScriptedServer fine([&probes](Socket s) {
        s.read_some();
        ++probes;
        s.send_all("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    std::vector<std::unique_ptr<ScriptedServer>> hanging;
    for (int i = 0; i < 16; ++i) {
        hanging.push_back(
            std::make_unique<ScriptedServer>([](Socket s) { s.read_until_closed(); }));
    }
    ServiceSpec service = service_to({fine.port()});
    service.health = "interval = \"1s\"\ntimeout = \"900ms\"\nfall = 1";
    Fulcrum fulcrum = start_fulcrum({service});  // one checked backend: the smallest pool

    // Listening comes before the SIGHUP handler: wait until fulcrum says it runs.
    REQUIRE(fulcrum.process().wait_for_output("running with", 10s));
    for (const auto& server : hanging) service.backends.push_back(server->port());
    reload(fulcrum, config_for({service}), 1);
    REQUIRE(fulcrum.process().wait_for_output("backend b16 is down (was up)", 8s));
    // Sixteen probes hanging 0.9 s each would keep the four threads of the pool's size at
    // start busy 3.6 s per round, and the healthy backend's probe would wait behind them:
    // five probes would take about 18 s instead of 5.
    const int before = probes.load();
    CHECK(poll_until([&] { return probes.load() >= before + 5; }, 7s));
}
