// Running as a system service: systemd's notifications, shutdown_grace, JSON logs.

#include <signal.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "notify_socket.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

// "2026-12-07T18:40:29.123+00:00": RFC 3339 with milliseconds and a numeric offset.
bool is_rfc3339(const std::string& text) {
    const std::string shape = "dddd-dd-ddTdd:dd:dd.ddd+dd:dd";
    if (text.size() != shape.size()) return false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (shape[i] == 'd'   ? !std::isdigit(c)
            : shape[i] == '+' ? c != '+' && c != '-'
                              : c != shape[i]) {
            return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("systemd hears READY, RELOADING then READY, STATUS, WATCHDOG and STOPPING",
          "[service][systemd]") {
    NamedEcho a("a");
    const ServiceSpec service = service_to({a.port()});
    const NotifySocket notify;
    // The watchdog at 400 ms: pings at half of it.
    const ScopedEnvironment environment{{"NOTIFY_SOCKET", notify.path().c_str()},
                                        {"WATCHDOG_USEC", "400000"}};
    Fulcrum fulcrum(config_for({service}), {service.listen});

    const std::optional<std::string> ready = notify.wait_for("READY=1", 10s);
    REQUIRE(ready);
    CHECK(has_line_starting(*ready, "STATUS=1 service, "));
    // Ready means bound: a connection made now is served.
    CHECK(connect_named(service.listen).second == "a");
    CHECK(notify.wait_for("WATCHDOG=1", 5s));

    fulcrum.process().send_signal(SIGHUP);
    const std::optional<std::string> reloading = notify.wait_for("RELOADING=1", 10s);
    REQUIRE(reloading);
    CHECK(has_line_starting(*reloading, "MONOTONIC_USEC="));
    CHECK(notify.wait_for("READY=1", 10s));

    fulcrum.process().send_signal(SIGTERM);
    std::vector<std::string> before_stopping;
    const std::optional<std::string> stopping =
        notify.wait_for("STOPPING=1", 10s, &before_stopping);
    REQUIRE(stopping);
    for (const std::string& message : before_stopping) {
        CHECK_FALSE(has_line_starting(message, "READY=1"));  // nothing out of order
    }
    CHECK(fulcrum.process().wait_exit(10s) == 0);
}

TEST_CASE("without NOTIFY_SOCKET nothing is sent and fulcrum runs as before",
          "[service][systemd]") {
    NamedEcho a("a");
    const ServiceSpec service = service_to({a.port()});
    const ScopedEnvironment environment{{"NOTIFY_SOCKET", ""}};
    Fulcrum fulcrum(config_for({service}), {service.listen});
    CHECK(connect_named(service.listen).second == "a");
    fulcrum.process().send_signal(SIGTERM);
    CHECK(fulcrum.process().wait_exit(10s) == 0);
    CHECK(fulcrum.process().output().find("sd_notify") == std::string::npos);
}

TEST_CASE("during shutdown_grace /healthz answers 503 while new connections are served",
          "[service][lifecycle]") {
    NamedEcho a("a");
    const ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin, "shutdown_grace = \"3s\"");
    CHECK(admin_request(admin, "GET", "/healthz").status == 200);

    fulcrum.process().send_signal(SIGTERM);
    REQUIRE(fulcrum.process().wait_for_output("listeners close in 3s", 5s));
    CHECK(admin_request(admin, "GET", "/healthz").status == 503);
    // Still open: the tier in front has the grace period to route away.
    CHECK(fulcrum.process().listening_on(service.listen));
    CHECK(connect_named(service.listen).second == "a");
    CHECK(fulcrum.process().output().find("shutdown_grace over") == std::string::npos);

    // Then the listeners close and, with no session left, fulcrum exits.
    REQUIRE(fulcrum.process().wait_for_output("shutdown_grace over", 10s));
    CHECK(fulcrum.process().wait_exit(10s) == 0);
}

TEST_CASE("log.format = \"json\": every line is one JSON object, the access log typed",
          "[service][log]") {
    EchoServer echo;
    const ServiceSpec service = service_to({echo.port()});
    std::string config = config_for({service});
    const std::string level = "level = \"debug\"\n";
    config.insert(config.find(level) + level.size(), "format = \"json\"\n");
    Fulcrum fulcrum(config, {service.listen});
    const Transfer transfer = echo_through(service.listen, 100'000);
    CHECK(transfer.received == 100'000);
    REQUIRE(fulcrum.process().wait_for_output("\"msg\":\"access\"", 5s));
    fulcrum.process().send_signal(SIGHUP);
    REQUIRE(fulcrum.process().wait_for_output("reloaded", 10s));
    fulcrum.process().send_signal(SIGTERM);
    REQUIRE(fulcrum.process().wait_exit(10s) == 0);

    const std::set<std::string> syslog_levels{"debug", "info", "warning", "err", "crit"};
    std::istringstream lines(fulcrum.process().output());
    int access_records = 0;
    int lines_seen = 0;
    for (std::string line; std::getline(lines, line);) {
        ++lines_seen;
        INFO(line);
        const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
        REQUIRE_FALSE(record.is_discarded());
        REQUIRE(record.is_object());
        CHECK(is_rfc3339(record.value("time", "")));
        CHECK(syslog_levels.contains(record.value("level", "")));
        REQUIRE(record.contains("msg"));
        if (record["msg"] != "access") continue;
        ++access_records;
        CHECK(record["client"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
        CHECK(record["service"] == "svc");
        CHECK(record["backend"] == "b0");
        CHECK(record["bytes_in"] == 100'000);
        CHECK(record["bytes_out"] == 100'000);
        CHECK(record["duration_ms"].is_number_unsigned());
        CHECK(record["end"].is_string());
    }
    CHECK(access_records == 1);
    CHECK(lines_seen > 3);  // start, listening, reload, drain: events are objects too
}
