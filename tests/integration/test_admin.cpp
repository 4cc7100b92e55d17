// The admin endpoint through the real binary: exact counters after known traffic, a
// strictly parsed exposition, /status following health, drain and enable, the bearer
// token, and /healthz during a shutdown drain.

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "../support/prometheus_text.hpp"
#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr std::size_t MiB = 1024 * 1024;

// Waits until fulcrum has logged `sessions` access lines: every counter of those
// sessions is final once its line is written.
void wait_sessions_ended(Fulcrum& fulcrum, std::size_t sessions) {
    REQUIRE(poll_until(
        [&] { return count_of(fulcrum.process().output(), "access client=") >= sessions; }, 10s));
    CHECK(count_of(fulcrum.process().output(), "access client=") == sessions);
}

// Probes every second: under ThreadSanitizer on a busy machine a demo backend took more
// than 150 ms to answer, and one slow answer (fall = 1) took it down.
const std::string fast_probes = "interval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 2";

}  // namespace

TEST_CASE("scraped counters equal the connections and bytes that went through", "[admin]") {
    EchoServer echo;
    // The name exercises label escaping end to end (written TOML-escaped).
    ServiceSpec web =
        service_to({echo.port(), free_port()}, "retries = 1", R"(odd \"name\" \\ here)");
    web.passive = "enabled = false";
    const std::string web_name = R"(odd "name" \ here)";
    ServiceSpec down = service_to({free_port()}, "retries = 0\non_failure = \"http-502\"", "down");
    down.passive = "enabled = false";
    const std::uint16_t admin = free_port();
    // Two workers: their counters are summed when scraped.
    Fulcrum fulcrum(with_admin(config_for({web, down}, "workers = 2"), admin),
                    {admin, web.listen, down.listen});

    constexpr std::size_t connections = 12;
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < connections; ++i) {
        const std::size_t size = 17 + i * 150'000;  // up to 1.6 MiB: partial writes too
        const Transfer t = echo_through(web.listen, size);
        REQUIRE(t.received_hash == t.sent_hash);
        bytes += size;
    }
    constexpr std::size_t turned_away = 3;
    for (std::size_t i = 0; i < turned_away; ++i) {
        Socket client = connect_to(down.listen);
        client.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        client.shutdown_write();
        CHECK(client.read_to_eof().starts_with("HTTP/1.1 502 Bad Gateway"));
    }
    wait_sessions_ended(fulcrum, connections + turned_away);

    const Exposition metrics = scrape(admin);
    const LabelSet web_b0{{"service", web_name}, {"backend", "b0"}};
    const LabelSet web_b1{{"service", web_name}, {"backend", "b1"}};
    const LabelSet down_b0{{"service", "down"}, {"backend", "b0"}};
    CHECK(metrics.value("fulcrum_service_accepted_total", {{"service", web_name}}) == connections);
    CHECK(metrics.value("fulcrum_service_accepted_total", {{"service", "down"}}) == turned_away);
    CHECK(metrics.value("fulcrum_service_refused_total", {{"service", web_name}}) == 0);
    CHECK(metrics.value("fulcrum_backend_connections_total", web_b0) == connections);
    CHECK(metrics.value("fulcrum_backend_connections_total", web_b1) == 0);
    CHECK(metrics.value("fulcrum_backend_bytes_sent_total", web_b0) == bytes);
    CHECK(metrics.value("fulcrum_backend_bytes_received_total", web_b0) == bytes);
    CHECK(metrics.value("fulcrum_backend_bytes_sent_total", web_b1) == 0);
    CHECK(metrics.value("fulcrum_backend_active_connections", web_b0) == 0);
    CHECK(metrics.value("fulcrum_backend_session_duration_seconds_count", web_b0) == connections);
    CHECK(metrics.value("fulcrum_backend_session_duration_seconds_count", web_b1) == 0);
    // Every connect that b1 refused was retried on b0, and only those.
    const double b1_failures = metrics.value("fulcrum_backend_connect_failures_total", web_b1);
    CHECK(b1_failures >= 1);
    CHECK(metrics.value("fulcrum_backend_retries_total", web_b0) == b1_failures);
    CHECK(metrics.value("fulcrum_backend_retries_total", web_b1) == 0);
    CHECK(metrics.value("fulcrum_backend_connect_failures_total", web_b0) == 0);
    // The dead service: one refused connect per client, each answered with a 502.
    CHECK(metrics.value("fulcrum_backend_connect_failures_total", down_b0) == turned_away);
    CHECK(metrics.value("fulcrum_backend_connections_total", down_b0) == 0);
    CHECK(metrics.value("fulcrum_service_no_backend_total",
                        {{"service", "down"}, {"reason", "connect_failed"}}) == turned_away);
    CHECK(metrics.value("fulcrum_service_no_backend_total",
                        {{"service", "down"}, {"reason", "no_eligible"}}) == 0);
    CHECK(metrics.value("fulcrum_service_no_backend_total",
                        {{"service", web_name}, {"reason", "connect_failed"}}) == 0);
    // Why sessions ended, per reason.
    CHECK(metrics.value("fulcrum_sessions_ended_total",
                        {{"service", "down"}, {"reason", "connect-failed"}}) == turned_away);
    CHECK(metrics.value("fulcrum_sessions_ended_total",
                        {{"service", web_name}, {"reason", "client-fin"}}) == connections);
    CHECK(metrics.value("fulcrum_sessions_ended_total",
                        {{"service", web_name}, {"reason", "connect-failed"}}) == 0);
    CHECK(metrics.value("fulcrum_service_sessions", {{"service", web_name}}) == 0);
    // Connect times: one observation per connection established.
    CHECK(metrics.value("fulcrum_backend_connect_duration_seconds_count", web_b0) == connections);
    CHECK(metrics.value("fulcrum_backend_connect_duration_seconds_count", web_b1) == 0);
    // Process metrics, with the standard process collector's names.
    CHECK(metrics.value("fulcrum_workers") == 2);
    CHECK(metrics.value("fulcrum_client_connections") == 0);
    CHECK(metrics.value("process_start_time_seconds") > 1.7e9);
    CHECK(metrics.value("process_open_fds") > 0);
    CHECK(metrics.value("process_max_fds") >= metrics.value("process_open_fds"));
    CHECK(metrics.value("process_resident_memory_bytes") > 1e6);
    CHECK(metrics.value("process_cpu_seconds_total") >= 0);
    CHECK(metrics.value("fulcrum_max_connections") == 10000);
    CHECK(metrics.value("fulcrum_accept_paused_total") == 0);
    CHECK(metrics.value("fulcrum_last_reload_success_timestamp_seconds") >=
          metrics.value("process_start_time_seconds"));
    CHECK(metrics.has("fulcrum_build_info", {{"version", FULCRUM_VERSION_TEXT}}));
    // A session that b1 refused first lists both attempts.
    CHECK(fulcrum.process().output().find("attempts=b1:ECONNREFUSED,b0:ok") != std::string::npos);
    CHECK(metrics.value("fulcrum_reloads_total") == 0);
    // Health checks are off in this configuration: no probe histogram.
    CHECK_FALSE(metrics.has("fulcrum_backend_health_check_duration_seconds_count", web_b0));
}

TEST_CASE("max_connections refusals are counted", "[admin]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin, "max_connections = 1");
    Socket held = established_session(service.listen);
    Socket refused = connect_to(service.listen);
    CHECK(refused.read_until_closed() == 0);
    wait_sessions_ended(fulcrum, 1);

    const Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_service_refused_total", {{"service", "svc"}}) == 1);
    CHECK(metrics.value("fulcrum_service_accepted_total", {{"service", "svc"}}) == 1);
    CHECK(metrics.value("fulcrum_client_connections") == 1);
    CHECK(metrics.value("fulcrum_backend_active_connections",
                        {{"service", "svc"}, {"backend", "b0"}}) == 1);
}

TEST_CASE("counters survive a reload and reloads are counted", "[admin]") {
    NamedEcho a("a");
    NamedEcho b("b");
    ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);
    for (int i = 0; i < 3; ++i) CHECK(connect_named(service.listen).second == "a");
    wait_sessions_ended(fulcrum, 3);

    service.backends.push_back(b.port());
    reload(fulcrum, with_admin(config_for({service}), admin), 1);
    reload(fulcrum, "not toml", 2);
    const Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_backend_connections_total",
                        {{"service", "svc"}, {"backend", "b0"}}) == 3);
    CHECK(metrics.value("fulcrum_backend_connections_total",
                        {{"service", "svc"}, {"backend", "b1"}}) == 0);
    CHECK(metrics.value("fulcrum_service_accepted_total", {{"service", "svc"}}) == 3);
    CHECK(metrics.value("fulcrum_reloads_total") == 1);
    CHECK(metrics.value("fulcrum_reload_failures_total") == 1);
}

TEST_CASE("/status follows a backend's health checks", "[admin]") {
    DemoBackend alpha("alpha");
    DemoBackend beta("beta");
    ServiceSpec service = service_to({alpha.port(), beta.port()});
    service.health = fast_probes;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    auto b0_is = [&](const std::string& health, const std::string& result,
                     const std::string& detail) {
        return poll_until(
            [&] {
                const json b0 = backend_status(admin, 0);
                return b0["health"] == health && !b0["last_check"].is_null() &&
                       b0["last_check"]["result"] == result && b0["last_check"]["detail"] == detail;
            },
            5s);
    };
    REQUIRE(b0_is("up", "passed", "status 200"));
    const json status = status_of(admin);
    INFO(status.dump(2));
    const json& svc = status["services"][0];
    CHECK(svc["name"] == "svc");
    CHECK(svc["health_checks"] == true);
    const json& b0 = svc["backends"][0];
    CHECK(b0["name"] == "b0");
    CHECK(b0["address"] == alpha.address());
    CHECK(b0["weight"] == 1);
    CHECK(b0["admin_state"] == "enabled");
    CHECK(b0["active_connections"] == 0);
    CHECK(b0["last_check"]["seconds_ago"].get<double>() < 5);
    CHECK(b0["last_check"]["time"].get<std::string>().ends_with("Z"));
    CHECK(svc["backends"][1]["address"] == beta.address());

    set_health(alpha, false);
    CHECK(b0_is("down", "failed", "status 503"));
    CHECK(backend_status(admin, 0)["eligible"] == false);
    CHECK(backend_status(admin, 1)["health"] == "up");
    set_health(alpha, true);
    CHECK(b0_is("up", "passed", "status 200"));
}

TEST_CASE("drain stops new connections to a backend, in-flight ones finish; enable undoes it",
          "[admin]") {
    NamedEcho a("a");
    NamedEcho b("b");
    ServiceSpec service = service_to({a.port(), b.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    auto [in_flight, name] = connect_named(service.listen);
    REQUIRE(name == "a");
    const Reply drained = admin_request(admin, "POST", "/backends/svc/b0/drain");
    INFO(drained.body);
    REQUIRE(drained.status == 200);
    CHECK(json::parse(drained.body)["admin_state"] == "drained");
    CHECK(fulcrum.process().wait_for_output("backend b0 drained", 5s));

    for (int i = 0; i < 6; ++i) CHECK(connect_named(service.listen).second == "b");
    const json b0 = backend_status(admin, 0);
    CHECK(b0["admin_state"] == "drained");
    CHECK(b0["active_connections"] == 1);  // the in-flight session
    CHECK(scrape(admin).value("fulcrum_backend_drained", {{"service", "svc"}, {"backend", "b0"}}) ==
          1);

    const Transfer t = echo_over(in_flight, 16 * MiB);
    CHECK(t.received == 16 * MiB);
    CHECK(t.received_hash == t.sent_hash);

    REQUIRE(admin_request(admin, "POST", "/backends/svc/b0/enable").status == 200);
    CHECK(backend_status(admin, 0)["admin_state"] == "enabled");
    std::set<std::string> names;
    for (int i = 0; i < 4; ++i) names.insert(connect_named(service.listen).second);
    CHECK(names == std::set<std::string>{"a", "b"});
}

TEST_CASE("drain and enable of unknown names answer 404 with a JSON error", "[admin]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    const Reply no_service = admin_request(admin, "POST", "/backends/nope/b0/drain");
    CHECK(no_service.status == 404);
    CHECK(json::parse(no_service.body)["error"] == "unknown service 'nope'");
    const Reply no_backend = admin_request(admin, "POST", "/backends/svc/b9/enable");
    CHECK(no_backend.status == 404);
    CHECK(json::parse(no_backend.body)["error"] == "unknown backend 'b9' in service 'svc'");
    const Reply no_endpoint = admin_request(admin, "GET", "/nope");
    CHECK(no_endpoint.status == 404);
    CHECK(json::parse(no_endpoint.body).contains("error"));
    CHECK(backend_status(admin, 0)["admin_state"] == "enabled");
}

TEST_CASE("with admin.token set, every request needs the bearer token", "[admin]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin, "", "token = \"s3cret-token\"\n");

    for (const char* path : {"/metrics", "/status", "/healthz"}) {
        INFO(path);
        const Reply none = admin_request(admin, "GET", path);
        CHECK(none.status == 401);
        CHECK(json::parse(none.body).contains("error"));
        CHECK(admin_request(admin, "GET", path, "s3cret-tokeN").status == 401);
        CHECK(admin_request(admin, "GET", path, "s3cret-token").status == 200);
    }
    CHECK(admin_request(admin, "POST", "/backends/svc/b0/drain").status == 401);
    CHECK(admin_request(admin, "POST", "/backends/svc/b0/drain", "wrong").status == 401);
    CHECK(connect_named(service.listen).second == "a");  // still enabled
    CHECK(admin_request(admin, "POST", "/backends/svc/b0/drain", "s3cret-token").status == 200);
    CHECK(scrape(admin, "s3cret-token")
              .value("fulcrum_backend_drained", {{"service", "svc"}, {"backend", "b0"}}) == 1);

    // A reload puts a new token in force at once.
    reload(fulcrum, with_admin(config_for({service}), admin, "token = \"rotated\"\n"), 1);
    CHECK(admin_request(admin, "GET", "/healthz", "s3cret-token").status == 401);
    CHECK(admin_request(admin, "GET", "/healthz", "rotated").status == 200);
}

TEST_CASE("/healthz answers 503 once a shutdown drain began", "[admin]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin, "shutdown_timeout = \"1m\"");
    CHECK(admin_request(admin, "GET", "/healthz").status == 200);
    Socket held = established_session(service.listen);

    fulcrum.process().send_signal(SIGTERM);
    REQUIRE(fulcrum.process().wait_for_output("closing listeners", 5s));
    const Reply healthz = admin_request(admin, "GET", "/healthz");
    CHECK(healthz.status == 503);
    CHECK(healthz.body == "shutting down\n");
    CHECK(status_of(admin)["shutting_down"] == true);
    CHECK(scrape(admin).value("fulcrum_client_connections") == 1);  // still served

    // The held session still works; once it ends fulcrum exits cleanly.
    held.send_all("y");
    CHECK(held.read_exact(1) == "y");
    held.shutdown_write();
    CHECK(held.read_until_closed() == 0);
    CHECK(fulcrum.process().wait_exit(10s) == 0);
}

TEST_CASE("an admin address in use is a startup error", "[admin]") {
    const Socket taken = listen_any();
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    const TempDir dir;
    const std::string path =
        dir.write("fulcrum.toml", with_admin(config_for({service}), local_port(taken)));
    const RunResult result = run_fulcrum({"-c", path});
    INFO(result.output);
    CHECK(result.exit_code == 1);
    CHECK(result.output.find(
              "admin: cannot listen on 127.0.0.1:" + std::to_string(local_port(taken)) +
              ": Address already in use") != std::string::npos);
}
