// DNS discovery without sockets: SRV answers to backends (weight, priority, names), A/AAAA
// answers, how discovered backends join a service, and the [service.discovery] table.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/discovery/discovery.hpp"
#include "fulcrum/discovery/srv_mapping.hpp"

using namespace fulcrum;

namespace {

SrvTarget srv(std::string target, std::uint16_t port, std::uint16_t priority, std::uint16_t weight,
              std::string ip) {
    return {.target = std::move(target),
            .port = port,
            .priority = priority,
            .weight = weight,
            .ip = std::move(ip)};
}

const BackendConfig& named(const std::vector<BackendConfig>& backends, const std::string& name) {
    const auto found = std::ranges::find(backends, name, &BackendConfig::name);
    REQUIRE(found != backends.end());
    return *found;
}

std::string discovery_config(const std::string& discovery) {
    return "[[service]]\nname = \"redis\"\nlisten = \"127.0.0.1:6380\"\n[service.discovery]\n" +
           discovery;
}

}  // namespace

TEST_CASE("SRV weights become backend weights, weight 0 counts as 1", "[discovery]") {
    ServiceConfig service;
    const auto backends = backends_from_srv({srv("b.example.test.", 6379, 10, 0, "10.0.0.2"),
                                             srv("a.example.test", 6380, 10, 30, "10.0.0.1")},
                                            service);
    REQUIRE(backends.size() == 2);
    // Sorted by name, the trailing dot dropped.
    CHECK(backends[0].name == "a.example.test:6380");
    CHECK(backends[0].address.numeric() == "10.0.0.1:6380");
    CHECK(backends[0].weight == 30);
    CHECK(backends[1].name == "b.example.test:6379");
    CHECK(backends[1].weight == 1);
    for (const BackendConfig& backend : backends) {
        CHECK(backend.source == BackendSource::dns);
        CHECK_FALSE(backend.backup);
    }
}

TEST_CASE("the lowest SRV priority value marks the primaries, the others are backups",
          "[discovery]") {
    ServiceConfig service;
    service.send_proxy = ProxyVersion::v2;
    const auto backends = backends_from_srv(
        {srv("p2.test", 1, 20, 5, "10.0.0.3"), srv("p1.test", 1, 10, 5, "10.0.0.1"),
         srv("p1b.test", 1, 10, 1, "fd00::1"), srv("p3.test", 1, 30, 5, "10.0.0.4")},
        service);
    REQUIRE(backends.size() == 4);
    CHECK_FALSE(named(backends, "p1.test:1").backup);
    CHECK_FALSE(named(backends, "p1b.test:1").backup);
    CHECK(named(backends, "p1b.test:1").address.numeric() == "[fd00::1]:1");
    CHECK(named(backends, "p2.test:1").backup);
    CHECK(named(backends, "p3.test:1").backup);
    // The service's PROXY header setting applies to what it discovers.
    CHECK(named(backends, "p2.test:1").send_proxy == ProxyVersion::v2);
}

TEST_CASE("an SRV target:port given twice is one backend, at its lowest priority", "[discovery]") {
    const auto backends = backends_from_srv(
        {srv("t.test", 80, 20, 1, "10.0.0.1"), srv("t.test", 80, 10, 7, "10.0.0.1"),
         srv("u.test", 80, 20, 1, "10.0.0.2")},
        ServiceConfig{});
    REQUIRE(backends.size() == 2);
    CHECK(named(backends, "t.test:80").weight == 7);
    CHECK_FALSE(named(backends, "t.test:80").backup);
    CHECK(named(backends, "u.test:80").backup);
}

TEST_CASE("A and AAAA answers become ip:port backends", "[discovery]") {
    const auto backends =
        backends_from_addresses({"10.0.0.2", "::1", "10.0.0.2", "10.0.0.1"}, 6379, ServiceConfig{});
    REQUIRE(backends.size() == 3);
    CHECK(backends[0].name == "10.0.0.1:6379");
    CHECK(backends[1].name == "10.0.0.2:6379");
    CHECK(backends[2].name == "[::1]:6379");
    CHECK(backends[2].address.family() == AF_INET6);
    CHECK(backends[2].weight == 1);
}

TEST_CASE("discovered backends follow the configured ones; a configured name wins", "[discovery]") {
    ServiceConfig service;
    BackendConfig configured;
    configured.name = "10.0.0.1:80";
    configured.address = parse_address("10.0.0.1:80");
    configured.weight = 5;
    service.backends.push_back(configured);
    const auto running = with_discovered_backends(
        service, backends_from_addresses({"10.0.0.1", "10.0.0.2"}, 80, service));
    REQUIRE(running.backends.size() == 2);
    CHECK(running.backends[0].source == BackendSource::configured);
    CHECK(running.backends[0].weight == 5);
    CHECK(running.backends[1].name == "10.0.0.2:80");
    CHECK(running.backends[1].source == BackendSource::dns);
}

TEST_CASE("[service.discovery] is read, and makes [[service.backend]] optional",
          "[discovery][config]") {
    const Config config = load_config_text(discovery_config(R"(type = "dns-srv"
name = "_redis._tcp.example.test"
resolvers = ["127.0.0.1:5353", "10.0.0.2"]
interval = "100ms"
min_ttl = "100ms"
hold = "0s"
timeout = "500ms"
)"),
                                           "t.toml");
    const ServiceConfig& service = config.services.at(0);
    REQUIRE(service.discovery);
    CHECK(service.backends.empty());
    CHECK(service.discovery->type == DiscoveryType::dns_srv);
    CHECK(service.discovery->name == "_redis._tcp.example.test");
    REQUIRE(service.discovery->resolvers.size() == 2);
    CHECK(service.discovery->resolvers[1].numeric() == "10.0.0.2:53");
    CHECK(service.discovery->interval == std::chrono::milliseconds(100));
    CHECK(service.discovery->hold == Duration::zero());
    CHECK(service.discovery->timeout == std::chrono::milliseconds(500));
    // --check's output loads back to the same configuration.
    CHECK(load_config_text(to_toml(config), "t.toml") == config);
}

TEST_CASE("[service.discovery] errors name the line and key", "[discovery][config]") {
    auto error_of = [](const std::string& discovery) {
        try {
            load_config_text(discovery_config(discovery), "t.toml");
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("type = \"dns-a\"\nname = \"r.test\"\n") ==
          "t.toml:4:1: service[0].discovery.port: missing required key");
    CHECK(error_of("type = \"dns-srv\"\nname = \"r.test\"\nport = 1\n") ==
          "t.toml:7:8: service[0].discovery.port: applies only to type = \"dns-a\" (SRV "
          "answers carry the port)");
    CHECK(error_of("type = \"dns-a\"\nname = \"r.test\"\nport = 1\ninterval = \"50ms\"\n") ==
          "t.toml:8:12: service[0].discovery.interval: must be at least 100ms");
    CHECK(
        error_of("type = \"dns-a\"\nname = \"r.test\"\nport = 1\nresolvers = [\"localhost:53\"]\n")
            .starts_with("t.toml:8:14: service[0].discovery.resolvers[0]: "));
    CHECK(error_of("type = \"dns-a\"\nname = \"r.test\"\nport = 1\nmin_ttl = \"10s\"\n") ==
          "t.toml:8:11: service[0].discovery.min_ttl: min_ttl (10s) must not be longer than "
          "interval (5s)");
    CHECK(error_of("type = \"dns\"\nname = \"r.test\"\n") ==
          "t.toml:5:8: service[0].discovery.type: unknown value \"dns\"; valid values: "
          "\"dns-a\", \"dns-srv\", \"etcd\"");
}
