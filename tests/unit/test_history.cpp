// The status page's history without sockets: a ring of one point per sample, rates from
// the counters' growth, nulls where a series had no point, bounded in points and series.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "fulcrum/admin/history.hpp"

using namespace fulcrum;

namespace {

ServiceSample service(const std::string& name, std::uint64_t accepted, std::uint64_t bytes,
                      std::uint64_t sessions) {
    ServiceSample s;
    s.name = name;
    s.accepted = accepted;
    s.sessions = sessions;
    BackendSample& b = s.backends.emplace_back();
    b.name = "b0";
    b.connections = accepted;
    b.bytes_sent = bytes;
    b.bytes_received = 2 * bytes;
    b.active = sessions;
    return s;
}

}  // namespace

TEST_CASE("history: rates from counter growth, oldest first, null before the first rate",
          "[history]") {
    History history(5);
    history.record(100, {service("svc", 0, 0, 0)});
    history.record(101, {service("svc", 10, 1000, 3)});
    history.record(103, {service("svc", 30, 1000, 1)});  // two seconds: rates per second
    const auto json = history.to_json();
    CHECK(json["interval_seconds"] == 1);
    CHECK(json["times"] == nlohmann::ordered_json({100.0, 101.0, 103.0}));
    const auto& svc = json["services"][0];
    CHECK(svc["name"] == "svc");
    CHECK(svc["sessions"] == nlohmann::ordered_json({0.0, 3.0, 1.0}));
    CHECK(svc["connections_per_second"] == nlohmann::ordered_json({nullptr, 10.0, 10.0}));
    CHECK(svc["bytes_in_per_second"] == nlohmann::ordered_json({nullptr, 1000.0, 0.0}));
    CHECK(svc["bytes_out_per_second"] == nlohmann::ordered_json({nullptr, 2000.0, 0.0}));
    CHECK(svc["failures_per_second"] == nlohmann::ordered_json({nullptr, 0.0, 0.0}));
    const auto& b0 = svc["backends"][0];
    CHECK(b0["name"] == "b0");
    CHECK(b0["connections_per_second"] == nlohmann::ordered_json({nullptr, 10.0, 10.0}));
    CHECK(b0["sessions"] == nlohmann::ordered_json({0.0, 3.0, 1.0}));
}

TEST_CASE("history: a full ring drops the oldest point; a gone series ages out", "[history]") {
    History history(3);
    for (int t = 0; t < 5; ++t) {
        std::vector<ServiceSample> services{service("kept", 10 * t, 0, 0)};
        if (t < 2) services.push_back(service("gone", 0, 0, 0));
        history.record(t, services);
    }
    auto json = history.to_json();
    CHECK(json["times"] == nlohmann::ordered_json({2.0, 3.0, 4.0}));
    REQUIRE(json["services"].size() == 1);  // only what the latest sample has is shown
    CHECK(json["services"][0]["connections_per_second"] ==
          nlohmann::ordered_json({10.0, 10.0, 10.0}));
    // "gone" returns: a new series, its earlier points no longer shown, no rate yet.
    history.record(5, {service("kept", 50, 0, 0), service("gone", 7, 0, 0)});
    json = history.to_json();
    REQUIRE(json["services"].size() == 2);
    CHECK(json["services"][1]["name"] == "gone");
    CHECK(json["services"][1]["sessions"] == nlohmann::ordered_json({nullptr, nullptr, 0.0}));
    CHECK(json["services"][1]["connections_per_second"] ==
          nlohmann::ordered_json({nullptr, nullptr, nullptr}));
}

TEST_CASE("history: a counter that went back (a renamed backend) gives no rate", "[history]") {
    History history(4);
    history.record(0, {service("svc", 100, 0, 0)});
    history.record(1, {service("svc", 5, 0, 0)});
    history.record(2, {service("svc", 8, 0, 0)});
    const auto json = history.to_json();
    CHECK(json["services"][0]["connections_per_second"] ==
          nlohmann::ordered_json({nullptr, nullptr, 3.0}));
}
