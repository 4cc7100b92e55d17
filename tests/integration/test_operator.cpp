// What an operator relies on at 3 a.m., through the real binary: the health checks'
// history (transitions, failures by reason, last change, downtime) in /metrics and
// /status, the admin API's HTTP semantics (404, 405 with Allow), setting a weight at
// runtime, a public /healthz, the no-backend reason when everything is drained, the
// whole exposition passing `promtool check metrics`, and every file in examples/ coming
// up healthy in front of the quickstart's demo backends.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "../support/prometheus_text.hpp"
#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// As in test_admin.cpp: a slow answer under ThreadSanitizer must not take a backend down.
const std::string fast_probes = "interval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 2";

LabelSet of_backend(const std::string& name) {
    return {{"service", "svc"}, {"backend", name}};
}
LabelSet with(LabelSet labels, const std::string& key, const std::string& value) {
    labels.emplace(key, value);
    return labels;
}

std::string header(const Reply& reply, const std::string& name) {
    const auto it = reply.headers.find(name);
    return it == reply.headers.end() ? "" : it->second;
}

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The backends b0, b1, ... that `count` sequential connections reached, in order.
std::vector<std::string> sequence(std::uint16_t port, int count) {
    std::vector<std::string> names;
    for (int i = 0; i < count; ++i) names.push_back(connect_named(port).second);
    return names;
}

}  // namespace

TEST_CASE("health checks' transitions, failures by reason, last change and downtime are counted",
          "[admin][health]") {
    DemoBackend alpha("alpha");
    DemoBackend beta("beta");
    const std::uint16_t nothing = free_port();  // nothing listens: refused
    ServiceSpec service = service_to({alpha.port(), beta.port(), nothing});
    service.health = fast_probes;
    const std::uint16_t admin = free_port();
    const double started = unix_now();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    // The dead backend goes down (fall = 2), refused each time.
    REQUIRE(poll_until([&] { return backend_status(admin, 2)["health"] == "down"; }, 10s));
    REQUIRE(poll_until([&] { return backend_status(admin, 0)["last_check"].is_object(); }, 10s));
    Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_backend_check_transitions_total",
                        with(of_backend("b2"), "to", "down")) == 1);
    CHECK(metrics.value("fulcrum_backend_check_transitions_total",
                        with(of_backend("b2"), "to", "up")) == 0);
    CHECK(metrics.value("fulcrum_backend_check_failures_total",
                        with(of_backend("b2"), "reason", "refused")) >= 2);
    CHECK(metrics.value("fulcrum_backend_check_failures_total",
                        with(of_backend("b2"), "reason", "timeout")) == 0);
    // (Not every reason: under ThreadSanitizer a slow answer may count as a timeout.)
    for (const char* reason : {"refused", "status"}) {
        CHECK(metrics.value("fulcrum_backend_check_failures_total",
                            with(of_backend("b0"), "reason", reason)) == 0);
    }
    CHECK(metrics.value("fulcrum_backend_check_transitions_total",
                        with(of_backend("b0"), "to", "down")) == 0);
    // Never changed: the time it was first configured.
    const double b0_first =
        metrics.value("fulcrum_backend_last_change_timestamp_seconds", of_backend("b0"));
    CHECK(b0_first >= started - 1);
    CHECK(b0_first <= unix_now());
    CHECK(metrics.value("fulcrum_backend_downtime_seconds_total", of_backend("b0")) == 0);
    CHECK(metrics.value("fulcrum_backend_downtime_seconds_total", of_backend("b2")) > 0);

    // b0 fails its checks with a 503: down, counted as "status", downtime growing.
    const double before_fail = unix_now();
    set_health(alpha, false);
    REQUIRE(poll_until([&] { return backend_status(admin, 0)["health"] == "down"; }, 10s));
    metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_backend_check_transitions_total",
                        with(of_backend("b0"), "to", "down")) == 1);
    CHECK(metrics.value("fulcrum_backend_check_failures_total",
                        with(of_backend("b0"), "reason", "status")) >= 2);
    CHECK(metrics.value("fulcrum_backend_last_change_timestamp_seconds", of_backend("b0")) >=
          before_fail - 0.01);
    const double down_for =
        metrics.value("fulcrum_backend_downtime_seconds_total", of_backend("b0"));
    CHECK(poll_until(
        [&] {
            return scrape(admin).value("fulcrum_backend_downtime_seconds_total", of_backend("b0")) >
                   down_for;
        },
        5s, 50ms));

    // Back up: the downtime stops growing and the transition is counted.
    set_health(alpha, true);
    REQUIRE(poll_until([&] { return backend_status(admin, 0)["health"] == "up"; }, 10s));
    metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_backend_check_transitions_total",
                        with(of_backend("b0"), "to", "up")) == 1);
    const double total_down =
        metrics.value("fulcrum_backend_downtime_seconds_total", of_backend("b0"));
    CHECK(total_down > 0);
    CHECK(total_down < unix_now() - before_fail + 0.01);
    const json b0 = backend_status(admin, 0);
    INFO(b0.dump(2));
    CHECK(b0["checks"]["transitions_up"] == 1);
    CHECK(b0["checks"]["transitions_down"] == 1);
    CHECK(b0["checks"]["seconds_since_last_change"].get<double>() < 10);
    CHECK(b0["checks"]["downtime_seconds"].get<double>() == Approx(total_down).margin(0.01));
    CHECK(b0["checks"]["failures"]["status"].get<int>() >= 2);
    // beta was never touched.
    CHECK(metrics.value("fulcrum_backend_check_transitions_total",
                        with(of_backend("b1"), "to", "down")) == 0);
}

TEST_CASE("the admin API answers 404 for unknown paths and 405 with Allow for a wrong method",
          "[admin]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    for (const char* path :
         {"/backends/svc/b0/drain", "/backends/svc/b0/enable", "/backends/svc/b0/weight"}) {
        INFO(path);
        const Reply reply = admin_request(admin, "GET", path);
        CHECK(reply.status == 405);
        CHECK(header(reply, "Allow") == "POST");
        CHECK(json::parse(reply.body).contains("error"));
    }
    for (const char* path : {"/metrics", "/status", "/healthz"}) {
        INFO(path);
        const Reply reply = admin_request(admin, "POST", path);
        CHECK(reply.status == 405);
        CHECK(header(reply, "Allow") == "GET");
    }
    for (const char* method : {"GET", "POST"}) {
        INFO(method);
        const Reply reply = admin_request(admin, method, "/nope");
        CHECK(reply.status == 404);
        CHECK(json::parse(reply.body).contains("error"));
        CHECK(admin_request(admin, method, "/backends/svc/b0/explode").status == 404);
    }
    CHECK(backend_status(admin, 0)["admin_state"] == "enabled");
}

TEST_CASE("setting a weight changes the distribution on every worker until the next reload",
          "[admin]") {
    NamedEcho a("a");
    NamedEcho b("b");
    ServiceSpec service = service_to({a.port(), b.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);
    const LabelSet b0 = of_backend("b0");

    const Reply set =
        admin_request(admin, "POST", "/backends/svc/b0/weight", "", R"({"weight": 3})");
    INFO(set.body);
    REQUIRE(set.status == 200);
    CHECK(json::parse(set.body)["weight"] == 3);
    CHECK(json::parse(set.body)["configured_weight"] == 1);
    CHECK(fulcrum.process().wait_for_output("backend b0: weight 3 (was 1) until the next reload",
                                            5s));
    // The pool the workers pick from follows a moment later.
    REQUIRE(poll_until(
        [&] { return scrape(admin).value("fulcrum_backend_effective_weight", b0) == 3; }, 5s));
    // 3:1, exactly, in any 16 consecutive connections (a period of 4), whichever worker
    // accepts each.
    std::vector<std::string> names = sequence(service.listen, 16);
    CHECK(std::count(names.begin(), names.end(), "a") == 12);
    CHECK(std::count(names.begin(), names.end(), "b") == 4);

    for (const char* body : {R"({"weight": 0})", R"({"weight": "3"})", R"({"weight": 1.5})",
                             R"({"weight": 1000001})", R"([3])", "three", ""}) {
        INFO(body);
        const Reply bad = admin_request(admin, "POST", "/backends/svc/b0/weight", "", body);
        CHECK(bad.status == 400);
        CHECK(json::parse(bad.body).contains("error"));
    }
    CHECK(admin_request(admin, "POST", "/backends/svc/b9/weight", "", R"({"weight": 2})").status ==
          404);
    CHECK(backend_status(admin, 0)["weight"] == 3);

    // A reload puts the configured weight back.
    reload(fulcrum, with_admin(config_for({service}), admin), 1);
    REQUIRE(poll_until(
        [&] { return scrape(admin).value("fulcrum_backend_effective_weight", b0) == 1; }, 5s));
    CHECK(backend_status(admin, 0)["weight"] == 1);
    names = sequence(service.listen, 8);
    CHECK(std::count(names.begin(), names.end(), "a") == 4);
}

TEST_CASE("admin.healthz_public lets /healthz answer without the token, nothing else", "[admin]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum =
        start_with_admin({service}, admin, "", "token = \"s3cret-token\"\nhealthz_public = true\n");
    CHECK(admin_request(admin, "GET", "/healthz").status == 200);
    CHECK(admin_request(admin, "GET", "/status").status == 401);
    CHECK(admin_request(admin, "GET", "/metrics").status == 401);
    CHECK(admin_request(admin, "POST", "/backends/svc/b0/drain").status == 401);
    CHECK(admin_request(admin, "GET", "/status", "s3cret-token").status == 200);
}

TEST_CASE("with every backend drained, on_failure is logged as no-backend, not connect-failed",
          "[admin]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()}, "on_failure = \"http-502\"");
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);
    REQUIRE(admin_request(admin, "POST", "/backends/svc/b0/drain").status == 200);

    Socket client = connect_to(service.listen);
    CHECK(client.read_to_eof().starts_with("HTTP/1.1 502 Bad Gateway"));
    REQUIRE(fulcrum.process().wait_for_output("end=no-backend", 5s));
    CHECK(fulcrum.process().output().find("end=connect-failed") == std::string::npos);
    const Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_service_no_backend_total",
                        {{"service", "svc"}, {"reason", "no_eligible"}}) == 1);
    CHECK(metrics.value("fulcrum_service_no_backend_total",
                        {{"service", "svc"}, {"reason", "connect_failed"}}) == 0);
    CHECK(metrics.value("fulcrum_sessions_ended_total",
                        {{"service", "svc"}, {"reason", "no-backend"}}) == 1);
}

TEST_CASE("the whole exposition passes promtool check metrics", "[admin]") {
    const RunResult version = [] {
        try {
            ChildProcess probe({"/usr/bin/promtool", "--version"});
            const auto code = probe.wait_exit(10s);
            return RunResult{code.value_or(-1), probe.output()};
        } catch (const std::exception& e) {
            return RunResult{-1, e.what()};
        }
    }();
    if (version.exit_code != 0) {
        FAIL("promtool is missing (tests/install-deps.sh installs Debian's prometheus): "
             << version.output);
    }
    // Every family at once: checked backends (probe histograms, check history), a limit
    // and a queue, per-source limits, a drained backend, a service without checks and
    // one with DNS discovery (whose resolver refuses: resolutions counted as errors).
    DemoBackend alpha("alpha");
    NamedEcho echo("e");
    ServiceSpec checked = service_to({alpha.port(), free_port()}, "", "checked");
    checked.health = fast_probes;
    ServiceSpec limited =
        service_to({echo.port()}, "queue_timeout = \"1s\"\nqueue_max = 10", "limited");
    ServiceSpec discovered =
        service_to({},
                   "discovery = { type = \"dns-a\", name = \"web.svc.test\", port = 1, resolvers = "
                   "[\"127.0.0.1:" +
                       std::to_string(free_port()) +
                       "\"], interval = \"100ms\", "
                       "min_ttl = \"100ms\", timeout = \"100ms\" }",
                   "discovered");
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({checked, limited, discovered}, admin);
    REQUIRE(poll_until(
        [&] {
            return scrape(admin).value("fulcrum_discovery_resolutions_total",
                                       {{"service", "discovered"}, {"result", "error"}}) > 0;
        },
        10s));
    REQUIRE(poll_until(
        [&] { return status_of(admin)["services"][0]["backends"][1]["health"] == "down"; }, 10s));
    for (int i = 0; i < 3; ++i) CHECK(connect_named(limited.listen).second == "e");

    const Reply metrics = admin_request(admin, "GET", "/metrics");
    REQUIRE(metrics.status == 200);
    const TempDir dir;
    const std::string path = dir.write("metrics.txt", metrics.body);
    ChildProcess promtool({"/bin/sh", "-c", "exec /usr/bin/promtool check metrics < " + path});
    const auto code = promtool.wait_exit(20s);
    INFO(promtool.output());
    CHECK(code == 0);
    CHECK(promtool.output().empty());  // no lint finding either
}

// Each file in examples/ runs as shipped, every port moved to a free one: its backends on
// 127.0.0.1:3001 and :3002 are the demo backends examples/quickstart.sh starts, any other
// backend a TCP listener (what a `tcp` check needs), and every checked backend passes its
// checks. A file without [admin] gets one, for /status. One whose backends come from etcd
// is only checked with --check.
TEST_CASE("every example configuration comes up healthy with the quickstart's demo backends",
          "[admin][examples]") {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(FULCRUM_SOURCE_ROOT "/examples")) {
        if (entry.path().extension() == ".toml") files.push_back(entry.path());
    }
    REQUIRE_FALSE(files.empty());
    for (const auto& file : files) {
        DYNAMIC_SECTION(file.filename().string()) {
            std::ifstream in(file);
            std::stringstream text;
            text << in.rdbuf();
            std::string config = text.str();
            if (config.find("type = \"etcd\"") != std::string::npos) {
                // Its backends come from a running etcd, which tests/integration/test_etcd.cpp
                // starts for its own configurations; here the file is valid as shipped.
                const RunResult check = run_fulcrum({"--check", "-c", file.string()});
                INFO(check.output);
                CHECK(check.exit_code == 0);
                continue;
            }

            DemoBackend backend_a("backend-a");
            DemoBackend backend_b("backend-b");
            std::map<std::string, std::uint16_t> moved{{"3001", backend_a.port()},
                                                       {"3002", backend_b.port()}};
            std::vector<std::unique_ptr<EchoServer>> other_backends;
            const std::regex backend_line(R"re(\naddress = "127\.0\.0\.1:(\d+)")re");
            for (std::sregex_iterator it(config.begin(), config.end(), backend_line), end;
                 it != end; ++it) {
                if (moved.contains((*it)[1])) continue;
                other_backends.push_back(std::make_unique<EchoServer>());
                moved[(*it)[1]] = other_backends.back()->port();
            }
            if (config.find("\n[admin]") == std::string::npos) {
                config += "\n[admin]\nlisten = \"127.0.0.1:9911\"\n";
            }
            std::vector<std::uint16_t> listening;
            const std::regex address(R"re("(127\.0\.0\.1|0\.0\.0\.0|localhost):(\d+)")re");
            std::string rewritten;
            auto last = config.cbegin();
            for (std::sregex_iterator it(config.begin(), config.end(), address), end; it != end;
                 ++it) {
                const std::string port = (*it)[2];
                if (!moved.contains(port)) {
                    moved[port] = free_port();
                    listening.push_back(moved[port]);
                }
                rewritten.append(last, (*it)[0].first);
                rewritten += "\"127.0.0.1:" + std::to_string(moved[port]) + "\"";
                last = (*it)[0].second;
            }
            rewritten.append(last, config.cend());
            const std::smatch admin_line = [&] {
                std::smatch m;
                std::regex_search(rewritten, m,
                                  std::regex(R"re(\[admin\]\s*\nlisten = "127\.0\.0\.1:(\d+)")re"));
                return m;
            }();
            REQUIRE_FALSE(admin_line.empty());  // the test reads /status
            const auto admin = static_cast<std::uint16_t>(std::stoi(admin_line[1]));

            INFO(rewritten);
            Fulcrum fulcrum(rewritten, listening);
            auto all_healthy = [&] {
                const json status = status_of(admin);
                for (const json& service : status["services"]) {
                    if (!service["health_checks"].get<bool>()) continue;
                    for (const json& b : service["backends"]) {
                        if (b["health"] != "up" || !b["last_check"].is_object() ||
                            b["last_check"]["result"] != "passed") {
                            return false;
                        }
                    }
                }
                return true;
            };
            // Probes are spread over each service's interval (5 s at most in examples).
            CHECK(poll_until(all_healthy, 20s, 100ms));
            INFO(status_of(admin).dump(2));
            CHECK(fulcrum.process().output().find("is down") == std::string::npos);
        }
    }
}
