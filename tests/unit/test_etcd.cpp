// etcd discovery without sockets: keys to backend names, values to backends, the set
// kept through listings and events (invalid values included), the [service.discovery]
// table of type "etcd", `fulcrum register`'s checks, and a drain from a value.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/discovery/etcd_mapping.hpp"
#include "fulcrum/discovery/etcd_registration.hpp"
#include "fulcrum/lb/backend.hpp"

using namespace fulcrum;

namespace {

ServiceConfig etcd_service() {
    ServiceConfig service;
    service.name = "redis";
    service.send_proxy = ProxyVersion::v2;
    DiscoveryConfig& discovery = service.discovery.emplace();
    discovery.type = DiscoveryType::etcd;
    discovery.endpoints = {"http://127.0.0.1:2379"};
    discovery.prefix = "/fulcrum/redis/";
    return service;
}

std::string error_of(const std::string& value) {
    try {
        backend_from_etcd_value("a", value, etcd_service());
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "no error";
}

EtcdEvent put(std::string key, std::string value) {
    return {false, {std::move(key), std::move(value)}, 0};
}

std::string config_error(const std::string& discovery) {
    try {
        load_config_text(
            "[[service]]\nname = \"redis\"\nlisten = \"127.0.0.1:6380\"\n[service.discovery]\n" +
                discovery,
            "t.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("etcd keys directly under the prefix name backends; deeper ones are ignored", "[etcd]") {
    CHECK(etcd_backend_name("/fulcrum/redis/a", "/fulcrum/redis/") == "a");
    CHECK(etcd_backend_name("/fulcrum/redis/cache-1.dc2", "/fulcrum/redis/") == "cache-1.dc2");
    CHECK_FALSE(etcd_backend_name("/fulcrum/redis/", "/fulcrum/redis/"));
    CHECK_FALSE(etcd_backend_name("/fulcrum/redis/a/b", "/fulcrum/redis/"));
    CHECK_FALSE(etcd_backend_name("/fulcrum/other/a", "/fulcrum/redis/"));
}

TEST_CASE("etcd values become backends; weight and drain are optional", "[etcd]") {
    const BackendConfig plain =
        backend_from_etcd_value("a", R"({"address": "127.0.0.1:6379"})", etcd_service());
    CHECK(plain.name == "a");
    CHECK(plain.address.numeric() == "127.0.0.1:6379");
    CHECK(plain.weight == 1);
    CHECK_FALSE(plain.drain);
    CHECK(plain.source == BackendSource::etcd);
    CHECK(plain.send_proxy == ProxyVersion::v2);  // the service's
    const BackendConfig full = backend_from_etcd_value(
        "b", R"({"address": "[fd00::5]:6379", "weight": 7, "drain": true, "zone": "x"})",
        etcd_service());
    CHECK(full.address.numeric() == "[fd00::5]:6379");
    CHECK(full.weight == 7);
    CHECK(full.drain);

    CHECK(error_of("{") == "not valid JSON");
    CHECK(error_of("[1]") == "not a JSON object");
    CHECK(error_of("{}") == "\"address\" must be a string, \"ip:port\"");
    CHECK(error_of(R"({"address": "127.0.0.1"})").starts_with("\"address\": missing port"));
    CHECK(error_of(R"({"address": "localhost:6379"})")
              .starts_with("\"address\": \"localhost:6379\" is not numeric"));
    CHECK(error_of(R"({"address": "127.0.0.1:0"})") == "\"address\": port 0");
    CHECK(error_of(R"({"address": "127.0.0.1:1", "weight": 0})") ==
          "\"weight\" must be an integer of at least 1");
    CHECK(error_of(R"({"address": "127.0.0.1:1", "weight": "2"})") ==
          "\"weight\" must be an integer of at least 1");
    CHECK(error_of(R"({"address": "127.0.0.1:1", "drain": 1})") ==
          "\"drain\" must be true or false");
}

TEST_CASE(
    "the etcd backend set: listings, puts and deletes; an invalid value keeps the "
    "valid one it replaces",
    "[etcd]") {
    const ServiceConfig service = etcd_service();
    EtcdBackendSet set(service);
    std::vector<std::string> invalid;
    set.relist({{"/fulcrum/redis/a", R"({"address": "10.0.0.1:1"})"},
                {"/fulcrum/redis/b", "garbage"},
                {"/fulcrum/redis/x/y", R"({"address": "10.0.0.9:1"})"}},
               invalid);
    REQUIRE(set.backends().size() == 1);
    CHECK(set.backends()[0].name == "a");
    REQUIRE(invalid.size() == 1);
    CHECK(invalid[0] == "key /fulcrum/redis/b: not valid JSON; skipped");

    invalid.clear();
    CHECK(set.apply(put("/fulcrum/redis/c", R"({"address": "10.0.0.3:1", "weight": 4})"), invalid));
    CHECK(set.apply(put("/fulcrum/redis/a", "{"), invalid));  // a stays as it was
    CHECK_FALSE(set.apply(put("/fulcrum/redis/x/z", "{}"), invalid));
    REQUIRE(invalid.size() == 1);
    CHECK(invalid[0] == "key /fulcrum/redis/a: not valid JSON; the previous value stays");
    std::vector<BackendConfig> backends = set.backends();
    REQUIRE(backends.size() == 2);
    CHECK(backends[0].name == "a");
    CHECK(backends[0].address.numeric() == "10.0.0.1:1");
    CHECK(backends[1].name == "c");
    CHECK(backends[1].weight == 4);

    CHECK(set.apply({true, {"/fulcrum/redis/a", ""}, 0}, invalid));
    backends = set.backends();
    REQUIRE(backends.size() == 1);
    CHECK(backends[0].name == "c");

    // A listing after a compaction: what the store has, and an invalid value there keeps
    // the valid one of that name.
    invalid.clear();
    set.relist({{"/fulcrum/redis/c", "nope"}, {"/fulcrum/redis/d", R"({"address": "10.0.0.4:1"})"}},
               invalid);
    backends = set.backends();
    REQUIRE(backends.size() == 2);
    CHECK(backends[0].name == "c");
    CHECK(backends[0].weight == 4);
    CHECK(backends[1].name == "d");
    CHECK(invalid.size() == 1);
}

TEST_CASE("[service.discovery] of type etcd is read, and its errors name the key",
          "[etcd][config]") {
    const Config config = load_config_text(
        "[[service]]\nname = \"redis\"\nlisten = \"127.0.0.1:6380\"\n[service.discovery]\n"
        "type = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\", \"http://etcd-2.test:2379\"]\n"
        "prefix = \"/fulcrum/redis/\"\ntimeout = \"1s\"\n",
        "t.toml");
    const DiscoveryConfig& discovery = *config.services.at(0).discovery;
    CHECK(discovery.type == DiscoveryType::etcd);
    CHECK(discovery.endpoints ==
          std::vector<std::string>{"http://127.0.0.1:2379", "http://etcd-2.test:2379"});
    CHECK(discovery.prefix == "/fulcrum/redis/");
    CHECK(discovery.timeout == std::chrono::seconds(1));
    CHECK(load_config_text(to_toml(config), "t.toml") == config);

    CHECK(config_error("type = \"etcd\"\nprefix = \"/p/\"\n") ==
          "t.toml:4:1: service[0].discovery.endpoints: missing required key");
    CHECK(config_error("type = \"etcd\"\nendpoints = []\nprefix = \"/p/\"\n") ==
          "t.toml:6:13: service[0].discovery.endpoints: must not be empty");
    CHECK(config_error("type = \"etcd\"\nendpoints = [\"https://e:2379\"]\nprefix = \"/p/\"\n") ==
          "t.toml:6:14: service[0].discovery.endpoints[0]: 'https://e:2379' must start with "
          "http:// (https is not supported)");
    CHECK(config_error("type = \"etcd\"\nendpoints = [\"http://e\"]\nprefix = \"/p/\"\n") ==
          "t.toml:6:14: service[0].discovery.endpoints[0]: 'http://e' must be "
          "http://host:port, e.g. http://127.0.0.1:2379");
    CHECK(config_error("type = \"etcd\"\nendpoints = [\"http://e:1\"]\nprefix = \"/p\"\n") ==
          "t.toml:7:10: service[0].discovery.prefix: must end with \"/\", e.g. "
          "\"/fulcrum/redis/\"");
    CHECK(config_error(
              "type = \"etcd\"\nendpoints = [\"http://e:1\"]\nprefix = \"/p/\"\nname = \"x\"\n") ==
          "t.toml:8:8: service[0].discovery.name: applies only to type = \"dns-a\" and "
          "\"dns-srv\"");
    CHECK(config_error("type = \"dns-a\"\nname = \"x\"\nport = 1\nprefix = \"/p/\"\n") ==
          "t.toml:8:10: service[0].discovery.prefix: applies only to type = \"etcd\"");
}

TEST_CASE("fulcrum register checks its arguments as the instances read them", "[etcd]") {
    Registration registration;
    registration.endpoints = {"http://127.0.0.1:2379"};
    registration.prefix = "/fulcrum/redis/";
    registration.name = "a";
    registration.address = "127.0.0.1:6379";
    CHECK_NOTHROW(check_registration(registration));
    CHECK(registration.key() == "/fulcrum/redis/a");
    CHECK(registration.value() == R"({"address":"127.0.0.1:6379"})");
    registration.weight = 3;
    CHECK(registration.value() == R"({"address":"127.0.0.1:6379","weight":3})");

    const auto error_with = [&](auto change) {
        Registration changed = registration;
        change(changed);
        try {
            check_registration(changed);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_with([](Registration& r) { r.name = "a/b"; }) ==
          "--name: must be non-empty and without \"/\"");
    CHECK(error_with([](Registration& r) { r.prefix = "/p"; }) ==
          "--prefix: must end with \"/\", e.g. /fulcrum/redis/");
    CHECK(error_with([](Registration& r) {
              r.address = "db:1";
          }).starts_with("--address or --weight: \"address\": \"db:1\" is not numeric"));
    CHECK(error_with([](Registration& r) { r.weight = 0; }) ==
          "--address or --weight: \"weight\" must be an integer of at least 1");
    CHECK(error_with([](Registration& r) {
              r.endpoints = {"127.0.0.1:2379"};
          }).starts_with("--etcd: '127.0.0.1:2379' must start with http://"));
    CHECK(error_with([](Registration& r) { r.ttl = std::chrono::milliseconds(500); }) ==
          "--ttl: must be at least 1s");
}

TEST_CASE("a drain from the etcd value and the admin endpoint's are apart", "[etcd]") {
    ServiceConfig service = etcd_service();
    service.backends.push_back(
        backend_from_etcd_value("a", R"({"address": "10.0.0.1:1"})", service));
    const Pool first(service, nullptr, 1, 1000);
    const std::shared_ptr<Backend> backend = first.members.at(0).backend;
    CHECK(backend->eligible());

    service.backends[0].drain = true;
    const Pool drained(service, &first, 1, 2000);
    CHECK_FALSE(backend->eligible());
    CHECK(backend->leaving_since_ms == 2000);  // drain_timeout counts from here

    // The operator drains it too; the value's drain ending leaves the operator's.
    backend->drained = true;
    service.backends[0].drain = false;
    const Pool undrained(service, &drained, 1, 3000);
    CHECK_FALSE(backend->eligible());
    CHECK(backend->leaving_since_ms == 2000);
    backend->drained = false;
    CHECK(backend->eligible());
}
