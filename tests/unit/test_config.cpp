#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fulcrum/config/config.hpp"
#include "fulcrum/config/reader.hpp"

#include "../support/repeated.hpp"

using namespace fulcrum;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Errors = std::vector<std::string>;
using config_reader::max_config_size;
using fulcrum::test::repeated;

namespace {

// The errors of loading `text` as "t.toml"; fails the test when it loads.
Errors errors_of(std::string_view text) {
    try {
        load_config_text(text, "t.toml");
    } catch (const ConfigError& e) {
        return e.errors();
    }
    FAIL("configuration loaded without errors:\n" << text);
    return {};
}

// The only error of loading `text`.
std::string error_of(std::string_view text) {
    const Errors errors = errors_of(text);
    REQUIRE(errors.size() == 1);
    return errors.front();
}

Config load(std::string_view text) {
    return load_config_text(text, "t.toml");
}

// A file in a fresh temporary directory, removed with it.
class TempFile {
public:
    explicit TempFile(std::string_view content) {
        char pattern[] = "/tmp/fulcrum-test-XXXXXX";
        REQUIRE(mkdtemp(pattern) != nullptr);
        dir_ = pattern;
        std::ofstream(path()) << content;
    }
    ~TempFile() { std::filesystem::remove_all(dir_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    std::string dir() const { return dir_; }
    std::string path() const { return dir_ + "/fulcrum.toml"; }

private:
    std::string dir_;
};

constexpr std::string_view minimal = R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[[service.backend]]
address = "127.0.0.1:3001"
)";

}  // namespace

TEST_CASE("a minimal file gets every default", "[config]") {
    const Config config = load(minimal);
    CHECK(config.source == "t.toml");
    CHECK(config.log.level == "info");
    CHECK(config.log.access_log);
    CHECK_FALSE(config.admin.listen.has_value());
    CHECK(config.runtime.workers == 0);
    CHECK(config.runtime.max_connections == 10000);
    CHECK(config.runtime.shutdown_timeout == 30s);
    CHECK(config.runtime.splice_pipes == 1024);
    REQUIRE(config.services.size() == 1);
    const ServiceConfig& service = config.services[0];
    CHECK(service.name == "web");
    CHECK(service.listen.numeric() == "127.0.0.1:8080");
    CHECK(service.strategy == StrategyKind::round_robin);
    CHECK(service.connect_timeout == 2s);
    CHECK(service.idle_timeout == 5min);
    CHECK(service.retries == 2);
    CHECK(service.on_failure == OnFailure::close);
    CHECK(service.health == HealthConfig{});
    REQUIRE(service.backends.size() == 1);
    CHECK(service.backends[0].name == "127.0.0.1:3001");
    CHECK(service.backends[0].address.numeric() == "127.0.0.1:3001");
    CHECK(service.backends[0].weight == 1);
}

TEST_CASE("every key is read", "[config]") {
    const Config config = load(R"(
[log]
level = "debug"
access_log = false
[admin]
listen = "127.0.0.1:9090"
token = "s3cr3t-T0ken_~"
[runtime]
workers = 4
max_connections = 20
shutdown_timeout = "0s"
splice_pipes = 0
[[service]]
name = "db"
listen = "[::1]:0"
strategy = "round-robin"
connect_timeout = "250ms"
idle_timeout = "1h"
retries = 0
on_failure = "reset"
[service.health]
enabled = false
path = "/ready?full=1"
interval = "1m30s"
timeout = "5s"
rise = 1
fall = 7
expect_status = "200-204"
host = "db.internal"
port = 8081
all_unhealthy = "fail-open"
[service.passive]
enabled = false
max_failures = 5
window = "30s"
cooldown = "2m"
[[service.backend]]
address = "[::1]:5432"
name = "primary"
weight = 3
)");
    CHECK(config.log.level == "debug");
    CHECK_FALSE(config.log.access_log);
    REQUIRE(config.admin.listen.has_value());
    CHECK(config.admin.listen->numeric() == "127.0.0.1:9090");
    CHECK(config.admin.token == "s3cr3t-T0ken_~");
    CHECK(config.runtime.workers == 4);
    CHECK(config.runtime.max_connections == 20);
    CHECK(config.runtime.shutdown_timeout == 0s);
    CHECK(config.runtime.splice_pipes == 0);
    const ServiceConfig& service = config.services.at(0);
    CHECK(service.name == "db");
    CHECK(service.listen.numeric() == "[::1]:0");
    CHECK(service.connect_timeout == 250ms);
    CHECK(service.idle_timeout == 1h);
    CHECK(service.retries == 0);
    CHECK(service.on_failure == OnFailure::reset);
    CHECK_FALSE(service.health.enabled);
    CHECK(service.health.path == "/ready?full=1");
    CHECK(service.health.interval == 90s);
    CHECK(service.health.timeout == 5s);
    CHECK(service.health.rise == 1);
    CHECK(service.health.fall == 7);
    CHECK(service.health.expect_status_min == 200);
    CHECK(service.health.expect_status_max == 204);
    CHECK(service.health.host == "db.internal");
    CHECK(service.health.port == 8081);
    CHECK(service.health.all_unhealthy == AllUnhealthy::fail_open);
    CHECK_FALSE(service.passive.enabled);
    CHECK(service.passive.max_failures == 5);
    CHECK(service.passive.window == 30s);
    CHECK(service.passive.cooldown == 2min);
    const BackendConfig& backend = service.backends.at(0);
    CHECK(backend.name == "primary");
    CHECK(backend.address.numeric() == "[::1]:5432");
    CHECK(backend.weight == 3);
}

TEST_CASE("workers accepts \"auto\" or a count", "[config]") {
    CHECK(load(std::string("[runtime]\nworkers = \"auto\"\n") + std::string(minimal))
              .runtime.workers == 0);
    CHECK(load(std::string("[runtime]\nworkers = 1\n") + std::string(minimal)).runtime.workers ==
          1);
}

TEST_CASE("enumerated values print their configuration names", "[config]") {
    CHECK(to_string(StrategyKind::round_robin) == "round-robin");
    CHECK(to_string(OnFailure::close) == "close");
    CHECK(to_string(OnFailure::reset) == "reset");
    CHECK(to_string(OnFailure::http_502) == "http-502");
}

// ---- one test per validation rule, each checking the whole message ----

TEST_CASE("unknown key suggests the nearest valid key", "[config][errors]") {
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[[service.backend]]
address = "127.0.0.1:3001"
wieght = 2
)") == "t.toml:6:10: service[0].backend[0].wieght: unknown key; did you mean 'weight'?");

    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
conect_timeout = "1s"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:4:18: service[0].conect_timeout: unknown key; did you mean 'connect_timeout'?");

    CHECK(error_of(std::string(minimal) + "[servce.health]\nrise = 1\n") ==
          "t.toml:6:1: servce: unknown key; did you mean 'service'?");
}

TEST_CASE("unknown key far from every valid key lists the valid keys", "[config][errors]") {
    CHECK(error_of(std::string("[log]\ncolour = true\n") + std::string(minimal)) ==
          "t.toml:2:10: log.colour: unknown key; valid keys here: access_log, format, level, "
          "target");
}

TEST_CASE("wrong types name the expected and the actual type", "[config][errors]") {
    CHECK(errors_of(R"(log = 1
[runtime]
max_connections = true
[[service]]
name = "web"
listen = ["127.0.0.1:8080"]
retries = "2"
[service.health]
enabled = "yes"
[[service.backend]]
address = "127.0.0.1:3001"
weight = 1.5
)") == Errors{
           "t.toml:1:7: log: expected a table, got an integer",
           "t.toml:3:19: runtime.max_connections: expected an integer, got a boolean",
           "t.toml:6:10: service[0].listen: expected a string, got an array",
           "t.toml:7:11: service[0].retries: expected an integer, got a string",
           "t.toml:9:11: service[0].health.enabled: expected a boolean, got a string",
           "t.toml:12:10: service[0].backend[0].weight: expected an integer, got a float",
       });
}

TEST_CASE("service and backend must be arrays of tables", "[config][errors]") {
    CHECK(error_of("[service]\nname = \"web\"\n") ==
          "t.toml:1:1: service: expected an array of tables ([[service]]), got a table");
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
backend = ["127.0.0.1:3001"]
)") == "t.toml:4:12: service[0].backend[0]: expected a table, got a string");
}

TEST_CASE("missing required keys", "[config][errors]") {
    CHECK(error_of("[log]\nlevel = \"info\"\n") ==
          "t.toml:1:1: service: missing required key; add at least one [[service]]");
    CHECK(errors_of(R"(
[[service]]
retries = 1
[[service.backend]]
weight = 2
)") == Errors{
           "t.toml:2:1: service[0].name: missing required key",
           "t.toml:2:1: service[0].listen: missing required key",
           "t.toml:4:1: service[0].backend[0].address: missing required key",
       });
    CHECK(error_of("[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n") ==
          "t.toml:1:1: service[0].backend: missing required key; add at least one "
          "[[service.backend]]");
}

TEST_CASE("empty lists", "[config][errors]") {
    CHECK(error_of("[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\nbackend = []\n") ==
          "t.toml:4:11: service[0].backend: empty backend list; add at least one "
          "[[service.backend]]");
    CHECK(error_of("service = []\n") ==
          "t.toml:1:11: service: empty service list; add at least one [[service]]");
}

TEST_CASE("names must not be empty", "[config][errors]") {
    CHECK(errors_of(R"([[service]]
name = ""
listen = "127.0.0.1:8080"
[[service.backend]]
address = "127.0.0.1:3001"
name = ""
)") == Errors{
           "t.toml:2:8: service[0].name: must not be empty",
           "t.toml:6:8: service[0].backend[0].name: must not be empty",
       });
}

TEST_CASE("duplicate service name", "[config][errors]") {
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[[service.backend]]
address = "127.0.0.1:3001"
[[service]]
name = "web"
listen = "127.0.0.1:8081"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:7:8: service[1].name: duplicate service name 'web'; already used by service[0]");
}

TEST_CASE("duplicate listen address, compared in numeric form", "[config][errors]") {
    CHECK(error_of(R"([[service]]
name = "a"
listen = "[::1]:8080"
[[service.backend]]
address = "127.0.0.1:3001"
[[service]]
name = "b"
listen = "[0:0::1]:8080"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:8:10: service[1].listen: duplicate listen address '[::1]:8080'; already "
       "used by service[0] (services may share one only if each has server_names)");

    CHECK(error_of(std::string("[admin]\nlisten = \"127.0.0.1:8080\"\n") + std::string(minimal)) ==
          "t.toml:5:10: service[0].listen: duplicate listen address '127.0.0.1:8080'; already "
          "used by admin.listen");
}

TEST_CASE("port 0 listeners never collide", "[config]") {
    CHECK(load(R"([admin]
listen = "127.0.0.1:0"
[[service]]
name = "a"
listen = "127.0.0.1:0"
[[service.backend]]
address = "127.0.0.1:3001"
[[service]]
name = "b"
listen = "127.0.0.1:0"
[[service.backend]]
address = "127.0.0.1:3001"
)")
              .services.size() == 2);
}

TEST_CASE("duplicate backend names within a service", "[config][errors]") {
    CHECK(errors_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[[service.backend]]
address = "127.0.0.1:3001"
name = "a"
[[service.backend]]
address = "127.0.0.1:3002"
name = "a"
[[service.backend]]
address = "127.0.0.1:3003"
[[service.backend]]
address = "127.0.0.1:3003"
)") == Errors{
           "t.toml:9:8: service[0].backend[1].name: duplicate backend name 'a'; already "
           "used by service[0].backend[0]",
           "t.toml:13:11: service[0].backend[3].address: duplicate backend name "
           "'127.0.0.1:3003'; already used by service[0].backend[2]",
       });
}

TEST_CASE("the same backend name in two services is fine", "[config]") {
    CHECK(load(R"([[service]]
name = "a"
listen = "127.0.0.1:8080"
[[service.backend]]
address = "127.0.0.1:3001"
[[service]]
name = "b"
listen = "127.0.0.1:8081"
[[service.backend]]
address = "127.0.0.1:3001"
)")
              .services.size() == 2);
}

TEST_CASE("bad addresses", "[config][errors]") {
    const Errors errors = errors_of(R"([admin]
listen = "localhost"
[[service]]
name = "web"
listen = "127.0.0.1:70000"
[[service.backend]]
address = "no-such-host.invalid:3001"
[[service.backend]]
address = "::1:3002"
[[service.backend]]
address = "127.0.0.1:0"
)");
    REQUIRE(errors.size() == 5);
    CHECK(errors[0] ==
          "t.toml:2:10: admin.listen: missing port in 'localhost' (expected host:port or "
          "[ipv6]:port)");
    CHECK(errors[1] == "t.toml:5:10: service[0].listen: port 70000 is out of range (0-65535)");
    CHECK_THAT(errors[2], Catch::Matchers::StartsWith(
                              "t.toml:7:11: service[0].backend[0].address: cannot resolve host "
                              "'no-such-host.invalid': "));
    CHECK(errors[3] ==
          "t.toml:9:11: service[0].backend[1].address: an IPv6 address must be written in "
          "brackets, e.g. [::1]:8080 (got '::1:3002')");
    CHECK(errors[4] ==
          "t.toml:11:11: service[0].backend[2].address: port 0 is not allowed for a backend "
          "(use 1-65535)");
}

TEST_CASE("hostnames resolve when the file is loaded", "[config]") {
    const Config config = load(R"([[service]]
name = "web"
listen = "localhost:0"
[[service.backend]]
address = "localhost:3001"
)");
    const Address& backend = config.services[0].backends[0].address;
    CHECK(backend.text == "localhost:3001");
    CHECK((backend.numeric() == "127.0.0.1:3001" || backend.numeric() == "[::1]:3001"));
    CHECK(config.services[0].backends[0].name == "localhost:3001");
}

TEST_CASE("durations need a unit and a valid form", "[config][errors]") {
    CHECK(errors_of(R"([runtime]
shutdown_timeout = "30"
[[service]]
name = "web"
listen = "127.0.0.1:8080"
connect_timeout = "2 s"
idle_timeout = 300
[[service.backend]]
address = "127.0.0.1:3001"
)") == Errors{
           "t.toml:2:20: runtime.shutdown_timeout: \"30\" has no unit; a unit is required "
           "(ms, s, m or h), e.g. \"30s\"",
           "t.toml:6:19: service[0].connect_timeout: \"2 s\" is not a valid duration; write "
           "<number><unit> parts with units ms, s, m or h, e.g. \"250ms\", \"2s\", \"1m30s\"",
           "t.toml:7:16: service[0].idle_timeout: expected a duration string such as \"2s\", "
           "got an integer",
       });
}

TEST_CASE("timeouts must be greater than 0", "[config][errors]") {
    CHECK(errors_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
connect_timeout = "0s"
idle_timeout = "0ms"
[service.health]
interval = "0s"
timeout = "0s"
[[service.backend]]
address = "127.0.0.1:3001"
)") == Errors{
           "t.toml:4:19: service[0].connect_timeout: must be greater than 0",
           "t.toml:5:16: service[0].idle_timeout: must be greater than 0",
           "t.toml:7:12: service[0].health.interval: must be greater than 0",
           "t.toml:8:11: service[0].health.timeout: must be greater than 0",
       });
}

TEST_CASE("integers below their minimum", "[config][errors]") {
    CHECK(errors_of(R"([runtime]
workers = 0
max_connections = 0
splice_pipes = -1
[[service]]
name = "web"
listen = "127.0.0.1:8080"
retries = -1
[service.health]
rise = 0
fall = 0
[[service.backend]]
address = "127.0.0.1:3001"
[[service.backend]]
address = "127.0.0.1:3002"
weight = 0
)") == Errors{
           "t.toml:2:11: runtime.workers: must be at least 1",
           "t.toml:3:19: runtime.max_connections: must be at least 1",
           "t.toml:4:16: runtime.splice_pipes: must be at least 0",
           "t.toml:8:11: service[0].retries: must be at least 0",
           "t.toml:10:8: service[0].health.rise: must be at least 1",
           "t.toml:11:8: service[0].health.fall: must be at least 1",
           "t.toml:16:10: service[0].backend[1].weight: must be at least 1",
       });
}

TEST_CASE("integers above what the field holds", "[config][errors]") {
    CHECK(error_of(std::string(minimal) + "weight = 3000000000\n") ==
          "t.toml:6:10: service[0].backend[0].weight: must be at most 2147483647");
}

TEST_CASE("workers must be \"auto\" or a count", "[config][errors]") {
    CHECK(error_of(std::string("[runtime]\nworkers = \"many\"\n") + std::string(minimal)) ==
          "t.toml:2:11: runtime.workers: expected \"auto\" or an integer of at least 1, got "
          "\"many\"");
    CHECK(error_of(std::string("[runtime]\nworkers = true\n") + std::string(minimal)) ==
          "t.toml:2:11: runtime.workers: expected \"auto\" or an integer of at least 1, got a "
          "boolean");
}

TEST_CASE("health timeout must be below the interval", "[config][errors]") {
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
interval = "1s"
timeout = "1s"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:6:11: service[0].health.timeout: must be less than interval (1s)");

    // Only the interval written: the default timeout (1s) is what it collides with.
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
interval = "500ms"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:5:12: service[0].health.interval: must be greater than timeout (1s, the "
       "default)");
}

TEST_CASE("health path", "[config][errors]") {
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
path = "health"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:5:8: service[0].health.path: must start with '/'");
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
path = "/a b"
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:5:8: service[0].health.path: must not contain spaces or control characters");
}

TEST_CASE("enumerated values list the valid ones", "[config][errors]") {
    CHECK(errors_of(R"([log]
level = "verbose"
[[service]]
name = "web"
listen = "127.0.0.1:8080"
strategy = "fastest"
on_failure = "502"
[[service.backend]]
address = "127.0.0.1:3001"
)") == Errors{
           "t.toml:2:9: log.level: unknown value \"verbose\"; valid values: \"trace\", "
           "\"debug\", \"info\", \"warn\", \"error\", \"critical\", \"off\"",
           "t.toml:6:12: service[0].strategy: unknown value \"fastest\"; valid values: "
           "\"round-robin\", \"least-connections\", \"random-two\", \"source-hash\"",
           "t.toml:7:14: service[0].on_failure: unknown value \"502\"; valid values: "
           "\"close\", \"reset\", \"http-502\"",
       });
}

TEST_CASE("all errors of a file are reported together, in file order", "[config][errors]") {
    try {
        load(R"([log]
levle = "info"
[[service]]
name = "web"
listen = "127.0.0.1"
[[service.backend]]
address = "127.0.0.1:3001"
weight = 0
)");
        FAIL("no error");
    } catch (const ConfigError& e) {
        const Errors expected{
            "t.toml:2:9: log.levle: unknown key; did you mean 'level'?",
            "t.toml:5:10: service[0].listen: missing port in '127.0.0.1' (expected host:port "
            "or [ipv6]:port)",
            "t.toml:8:10: service[0].backend[0].weight: must be at least 1",
        };
        CHECK(e.errors() == expected);
        CHECK(std::string(e.what()) == expected[0] + "\n" + expected[1] + "\n" + expected[2]);
    }
}

TEST_CASE("a file that is not TOML gets toml11's located message", "[config][errors]") {
    const std::string error = error_of("[log]\nlevel = info\n");
    CHECK_THAT(error, Contains("t.toml"));
    CHECK_THAT(error, Contains(" 2 | level = info"));
}

TEST_CASE("files", "[config]") {
    SECTION("errors name the file as given") {
        const TempFile file("[[service]]\nlisten = \"127.0.0.1:1\"\nbackend = [{ address = 1 }]\n");
        try {
            load_config_file(file.path());
            FAIL("no error");
        } catch (const ConfigError& e) {
            CHECK(e.errors() ==
                  Errors{
                      file.path() + ":1:1: service[0].name: missing required key",
                      file.path() +
                          ":3:24: service[0].backend[0].address: expected a string, got an integer",
                  });
        }
    }
    SECTION("a valid file loads") {
        const TempFile file(minimal);
        CHECK(load_config_file(file.path()).source == file.path());
    }
    SECTION("a missing file") {
        try {
            load_config_file("/nonexistent/fulcrum.toml");
            FAIL("no error");
        } catch (const ConfigError& e) {
            CHECK(e.errors() ==
                  Errors{"/nonexistent/fulcrum.toml: cannot read: No such file or directory"});
        }
    }
    SECTION("a directory") {
        const TempFile file("");
        try {
            load_config_file(file.dir());
            FAIL("no error");
        } catch (const ConfigError& e) {
            CHECK(e.errors() == Errors{file.dir() + ": cannot read: Is a directory"});
        }
    }
}

TEST_CASE("the embedded default", "[config]") {
    const Config config = default_config();
    CHECK(config.source == "<default>");
    REQUIRE(config.services.size() == 1);
    const ServiceConfig& service = config.services[0];
    CHECK(service.name == "default");
    CHECK(service.listen.numeric() == "0.0.0.0:8080");
    CHECK(service.strategy == StrategyKind::round_robin);
    CHECK(service.on_failure == OnFailure::http_502);
    CHECK(service.health.enabled);
    CHECK(service.health.path == "/health");
    CHECK(service.health.interval == 2s);
    REQUIRE(service.backends.size() == 2);
    CHECK(service.backends[0].address.numeric() == "127.0.0.1:3001");
    CHECK(service.backends[1].address.numeric() == "127.0.0.1:3002");
}

namespace {

std::vector<std::filesystem::path> example_files() {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(
             std::filesystem::path(FULCRUM_SOURCE_ROOT) / "examples")) {
        if (entry.path().extension() == ".toml") files.push_back(entry.path());
    }
    return files;
}

}  // namespace

TEST_CASE("every example configuration loads", "[config][examples]") {
    const auto files = example_files();
    REQUIRE_FALSE(files.empty());
    for (const auto& file : files) {
        INFO(file.string());
        CHECK_NOTHROW(load_config_file(file.string()));
    }
}

TEST_CASE("to_toml writes what loads back to the same configuration", "[config][to_toml]") {
    std::vector<Config> configs{default_config(), load(minimal), load(R"([log]
level = "trace"
access_log = false
[admin]
listen = "[::1]:9090"
token = "t"
[runtime]
workers = 3
max_connections = 1
shutdown_timeout = "1h1ms"
splice_pipes = 7
[[service]]
name = "quote \" backslash \\ tab \t é"
listen = "localhost:0"
connect_timeout = "1m30s"
retries = 0
on_failure = "http-502"
[service.health]
enabled = false
path = "/h?x=\"1\""
interval = "10m"
timeout = "9m59s999ms"
rise = 4
fall = 5
expect_status = "204"
host = "h"
port = 65535
all_unhealthy = "refuse"
[service.passive]
max_failures = 1
window = "1ms"
cooldown = "1h"
[[service.backend]]
address = "localhost:1"
weight = 9
[[service.backend]]
address = "[::1]:2"
name = "two"
[[service]]
name = "proxied"
listen = "127.0.0.1:0"
send_proxy = "v2"
accept_proxy = true
proxy_trusted = ["10.0.0.0/8", "::1"]
proxy_timeout = "250ms"
[service.health]
send_proxy = true
[[service.backend]]
address = "127.0.0.1:1"
[[service.backend]]
address = "127.0.0.1:2"
send_proxy = "off"
[[service]]
name = "text"
listen = "127.0.0.1:0"
[service.health]
type = "send-expect"
send = "PING\r\n\u0001"
expect = "+PONG"
[[service.backend]]
address = "127.0.0.1:1"
[[service]]
name = "binary"
listen = "127.0.0.1:0"
[service.health]
type = "send-expect"
send_hex = "00ff0d0a"
expect_hex = "4e"
[[service.backend]]
address = "127.0.0.1:1"
[[service]]
name = "redis"
listen = "127.0.0.1:0"
[service.health]
type = "redis"
port = 6380
[[service.backend]]
address = "127.0.0.1:1"
[[service]]
name = "tls-a"
listen = "127.0.0.1:8443"
server_names = ["A.example.test.", "*.apps.example.test"]
preread_timeout = "2s"
sni_require_tls = false
[[service.backend]]
address = "127.0.0.1:3"
[[service]]
name = "tls-rest"
listen = "127.0.0.1:8443"
server_names = ["*"]
[[service.backend]]
address = "127.0.0.1:4"
)")};
    for (const auto& file : example_files()) configs.push_back(load_config_file(file.string()));

    for (const Config& config : configs) {
        const std::string text = to_toml(config);
        INFO(text);
        CHECK(load_config_text(text, config.source) == config);
    }
}

TEST_CASE("to_toml shows every value", "[config][to_toml]") {
    const std::string text = to_toml(load(minimal));
    CHECK_THAT(text, Contains("workers = \"auto\"\n"));
    CHECK_THAT(text, Contains("shutdown_timeout = \"30s\"\nshutdown_grace = \"0s\"\n"
                              "splice_pipes = 1024\n"));
    CHECK_THAT(text, Contains("[log]\nlevel = \"info\"\naccess_log = true\nformat = \"text\"\n"
                              "target = \"stderr\"\n"));
    CHECK_THAT(text, Contains("idle_timeout = \"5m\"\n"));
    CHECK_THAT(text, Contains("[service.health]\nenabled = true\ntype = \"http\"\npath = "
                              "\"/health\"\n"));
    CHECK_THAT(text, Contains("name = \"127.0.0.1:3001\"\naddress = \"127.0.0.1:3001\"\n"));
    CHECK_THAT(text, !Contains("listen = \"127.0.0.1:9090\""));
}

TEST_CASE("log.format, log.target and runtime.shutdown_grace", "[config]") {
    const Config config = load(
        std::string("[log]\nformat = \"json\"\ntarget = \"stdout\"\n[runtime]\n"
                    "shutdown_grace = \"15s\"\n") +
        std::string(minimal));
    CHECK(config.log.format == LogFormat::json);
    CHECK(config.log.target == LogTarget::stdout_stream);
    CHECK(config.runtime.shutdown_grace == std::chrono::seconds(15));
    CHECK(load(minimal).runtime.shutdown_grace.count() == 0);
    CHECK(error_of(std::string("[log]\nformat = \"xml\"\n") + std::string(minimal)) ==
          "t.toml:2:10: log.format: unknown value \"xml\"; valid values: \"text\", \"json\"");
}

TEST_CASE("admin.token must fit an Authorization header", "[config][errors]") {
    CHECK(errors_of(std::string("[admin]\ntoken = \"two words\"\n") + std::string(minimal)) ==
          Errors{"t.toml:2:9: admin.token: must be visible ASCII characters only (no spaces or "
                 "control characters)"});
    CHECK(errors_of(std::string("[admin]\ntoken = \"\"\n") + std::string(minimal)) ==
          Errors{"t.toml:2:9: admin.token: must not be empty"});
    CHECK(load(std::string("[admin]\nlisten = \"127.0.0.1:0\"\n") + std::string(minimal))
              .admin.token.empty());
}

TEST_CASE("health status range, port and all_unhealthy", "[config][errors]") {
    CHECK(errors_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
expect_status = "200-99"
port = 70000
all_unhealthy = "open"
[service.passive]
max_failures = 0
cooldown = "0s"
[[service.backend]]
address = "127.0.0.1:3001"
)") == Errors{
           "t.toml:5:17: service[0].health.expect_status: \"200-99\" is not a status range; "
           "write e.g. \"200-399\" or \"200\" (statuses 100-599)",
           "t.toml:6:8: service[0].health.port: must be at most 65535",
           "t.toml:7:17: service[0].health.all_unhealthy: unknown value \"open\"; valid "
           "values: \"refuse\", \"fail-open\"",
           "t.toml:9:16: service[0].passive.max_failures: must be at least 1",
           "t.toml:10:12: service[0].passive.cooldown: must be greater than 0",
       });
}

TEST_CASE("PROXY protocol settings", "[config][proxy_protocol]") {
    const Config config = load(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
send_proxy = "v1"
accept_proxy = true
proxy_trusted = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
[service.health]
send_proxy = true
[[service.backend]]
address = "127.0.0.1:3001"
[[service.backend]]
address = "127.0.0.1:3002"
send_proxy = "v2"
[[service.backend]]
address = "127.0.0.1:3003"
send_proxy = "off"
)");
    const ServiceConfig& web = config.services.at(0);
    CHECK(web.send_proxy == ProxyVersion::v1);
    CHECK(web.accept_proxy);
    REQUIRE(web.proxy_trusted.size() == 3);
    CHECK(web.proxy_trusted[2].text == "192.0.2.7");
    CHECK(web.proxy_timeout == 5s);
    CHECK(web.health.send_proxy);
    // A backend inherits the service's send_proxy unless it sets its own.
    CHECK(web.backends[0].send_proxy == ProxyVersion::v1);
    CHECK(web.backends[1].send_proxy == ProxyVersion::v2);
    CHECK(web.backends[2].send_proxy == std::nullopt);

    // Off by default.
    const ServiceConfig plain = load(minimal).services.at(0);
    CHECK(plain.send_proxy == std::nullopt);
    CHECK_FALSE(plain.accept_proxy);
    CHECK_FALSE(plain.health.send_proxy);
    CHECK(plain.backends.at(0).send_proxy == std::nullopt);
}

TEST_CASE("PROXY protocol settings are checked", "[config][proxy_protocol][errors]") {
    CHECK(errors_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
send_proxy = "v3"
proxy_trusted = ["10.0.0.0/8"]
proxy_timeout = "1s"
[[service.backend]]
address = "127.0.0.1:3001"
send_proxy = true
)") == Errors{
           "t.toml:4:14: service[0].send_proxy: unknown value \"v3\"; valid values: \"off\", "
           "\"v1\", \"v2\"",
           "t.toml:5:17: service[0].proxy_trusted: needs accept_proxy = true",
           "t.toml:6:17: service[0].proxy_timeout: needs accept_proxy = true",
           "t.toml:9:14: service[0].backend[0].send_proxy: expected a string, got a boolean",
       });
    // Each bad network is reported at its own element.
    CHECK(errors_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
accept_proxy = true
proxy_trusted = [
  "10.0.0.1/8",
  "10.0.0.0/33",
  "example.com",
  7,
]
[[service.backend]]
address = "127.0.0.1:3001"
)") == Errors{
           "t.toml:6:3: service[0].proxy_trusted[0]: '10.0.0.1/8' has host bits set; did you "
           "mean 10.0.0.0/8?",
           "t.toml:7:3: service[0].proxy_trusted[1]: prefix length '33' is not a number from 0 "
           "to 32",
           "t.toml:8:3: service[0].proxy_trusted[2]: 'example.com' is not an IPv4 or IPv6 "
           "address",
           "t.toml:9:3: service[0].proxy_trusted[3]: expected a string, got an integer",
       });
    // Health checks can only send a header some backend is configured with.
    CHECK(error_of(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
send_proxy = true
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:5:14: service[0].health.send_proxy: needs send_proxy on the service or a "
       "backend");
}

// ---- hostile inputs: rejected with a location before they can crash or stall the parser ----

namespace {

// `minimal` with `line` added to its backend table, as line 6.
std::string minimal_with(std::string_view line) {
    return std::string(minimal) + std::string(line) + "\n";
}

}  // namespace

TEST_CASE("deep nesting is rejected at the level that crosses the limit", "[config][hostile]") {
    const std::string too_deep =
        "nested deeper than 64 levels (arrays, inline tables and the parts of dotted keys count "
        "one each)";
    // 10,000 arrays and 5,000 inline tables overflowed the parser's stack.
    CHECK(error_of(minimal_with("x = " + repeated("[", 10000) + repeated("]", 10000))) ==
          "t.toml:6:67: " + too_deep);
    CHECK(error_of(minimal_with("x = " + repeated("{a = ", 5000) + repeated("}", 5000))) ==
          "t.toml:6:315: " + too_deep);
    CHECK(error_of(minimal_with(repeated("a.", 100) + "a = 1")) == "t.toml:6:126: " + too_deep);
    CHECK(error_of(std::string(minimal) + "[" + repeated("a.", 100) + "a]\n") ==
          "t.toml:6:131: " + too_deep);
    // A multi-line string closed by five quotes does not hide the brackets after it.
    CHECK(error_of(minimal_with("x = [\"\"\"a\"\"\"\"\", " + repeated("[", 100) +
                                repeated("]", 101))) == "t.toml:6:78: " + too_deep);
}

TEST_CASE("nesting within the limit, and brackets in strings and comments, are fine",
          "[config][hostile]") {
    CHECK(error_of(minimal_with("x = " + repeated("[", 62) + repeated("]", 62))) ==
          "t.toml:6:5: service[0].backend[0].x: unknown key; valid keys here: address, backup, "
          "max_connections, name, send_proxy, weight");
    const std::string brackets = repeated("[{", 100);
    for (const std::string& line :
         {"name = \"" + brackets + "\"", "name = '" + brackets + "'",
          "name = '''" + brackets + "'''", "name = \"\"\"\\\"" + brackets + "\"\"\"",
          "name = \"n\" # " + brackets}) {
        INFO(line);
        CHECK_NOTHROW(load(minimal_with(line)));
    }
}

TEST_CASE("a file over the size limit is rejected where it crosses the limit",
          "[config][hostile]") {
    const std::string line = "# " + repeated("x", 1021) + "\n";  // 1 KiB
    const std::string text = repeated(line, max_config_size / line.size()) + "# one more byte";
    REQUIRE(text.size() == max_config_size + 15);
    CHECK(error_of(text) ==
          "t.toml:1025:1: larger than 1048576 bytes, the limit for a "
          "configuration file");

    const TempFile file(text);
    try {
        load_config_file(file.path());
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(e.errors() == Errors{file.path() + ":1025:1: larger than 1048576 bytes, the "
                                                 "limit for a configuration file"});
    }
}

TEST_CASE("an endless file is read only up to the limit", "[config][hostile]") {
    try {
        load_config_file("/dev/zero");
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(e.errors() ==
              Errors{"/dev/zero:1:1048577: larger than 1048576 bytes, the limit for a "
                     "configuration file"});
    }
}

TEST_CASE("many values on long lines are rejected, the same values on short lines load",
          "[config][hostile]") {
    std::string entries;
    for (int i = 0; i < 10000; ++i) {
        entries += fmt::format("\"10.{}.{}.{}\",\n", i >> 16, (i >> 8) & 255, i & 255);
    }
    const std::string service =
        "[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\n"
        "accept_proxy = true\nproxy_trusted = [\n";
    const std::string backend = "]\n[[service.backend]]\naddress = \"127.0.0.1:3001\"\n";
    CHECK(load(service + entries + backend).services.at(0).proxy_trusted.size() == 10000);

    std::string one_line = entries;
    std::replace(one_line.begin(), one_line.end(), '\n', ' ');
    CHECK(error_of(service + one_line + backend) ==
          "t.toml:6:1: 10000 values or key parts in a line of 143125 bytes; toml11's time grows "
          "with values times line length, and this file's lines add up to too much: put long "
          "arrays one value or a few per line");
}

TEST_CASE("an unknown key far longer than any valid key lists the valid keys",
          "[config][hostile]") {
    const std::string key(max_config_size / 2, 'k');
    CHECK(error_of(minimal_with(key + " = 1")) ==
          "t.toml:6:" + std::to_string(key.size() + 4) + ": service[0].backend[0]." + key +
              ": unknown key; valid keys here: address, backup, max_connections, name, "
              "send_proxy, weight");
}

namespace {

// Two services on 127.0.0.1:8443: `first` and `second` are extra lines of each.
std::string shared_listen(std::string_view first, std::string_view second) {
    return fmt::format(R"([[service]]
name = "a"
listen = "127.0.0.1:8443"
{}
[[service.backend]]
address = "127.0.0.1:3001"
[[service]]
name = "b"
listen = "127.0.0.1:8443"
{}
[[service.backend]]
address = "127.0.0.1:3002"
)",
                       first, second);
}

}  // namespace

TEST_CASE("services share a listen address by server name; its settings apply to all",
          "[config][sni]") {
    const Config config = load(shared_listen(R"(server_names = ["API.Example.Test.", "*"]
sni_require_tls = false)",
                                             R"(server_names = ["*.Apps.example.test"]
preread_timeout = "750ms")"));
    REQUIRE(config.services.size() == 2);
    CHECK(config.services[0].server_names == std::vector<std::string>{"api.example.test", "*"});
    CHECK(config.services[1].server_names == std::vector<std::string>{"*.apps.example.test"});
    for (const ServiceConfig& service : config.services) {
        CHECK(service.preread_timeout == 750ms);
        CHECK_FALSE(service.sni_require_tls);
    }
    // One service may route by name alone: the others are closed.
    const Config single = load(R"([[service]]
name = "a"
listen = "127.0.0.1:8443"
server_names = ["a.test"]
[[service.backend]]
address = "127.0.0.1:3001"
)");
    CHECK(single.services[0].preread_timeout == 5s);
    CHECK(single.services[0].sni_require_tls);
}

TEST_CASE("server name errors are located", "[config][errors][sni]") {
    CHECK(error_of(shared_listen("", R"(server_names = ["b.test"])")) ==
          "t.toml:9:10: service[1].listen: duplicate listen address '127.0.0.1:8443'; already "
          "used by service[0] (services may share one only if each has server_names)");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test"])", "")) ==
          "t.toml:9:10: service[1].listen: duplicate listen address '127.0.0.1:8443'; already "
          "used by service[0] (services may share one only if each has server_names)");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test", "*"])",
                                 R"(server_names = ["A.test."])")) ==
          "t.toml:10:16: service[1].server_names: duplicate server name 'a.test'; already used "
          "by service[0]");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test", "a.test"])",
                                 R"(server_names = ["b.test"])")) ==
          "t.toml:4:16: service[0].server_names: duplicate server name 'a.test'; already used "
          "by this list");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test", "bad name"])",
                                 R"(server_names = ["b.test"])")) ==
          "t.toml:4:27: service[0].server_names[1]: \"bad name\" is not a server name; write a "
          "host name (\"api.example.test\"), a wildcard (\"*.example.test\") or \"*\"");
    CHECK(error_of(R"([[service]]
name = "a"
listen = "127.0.0.1:8443"
server_names = []
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:4:16: service[0].server_names: must not be empty");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test"]
preread_timeout = "1s")",
                                 R"(server_names = ["b.test"]
preread_timeout = "2s")")) ==
          "t.toml:12:19: service[1].preread_timeout: 2s conflicts with 1s set on another "
          "service of listen 127.0.0.1:8443");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test"]
sni_require_tls = true)",
                                 R"(server_names = ["b.test"]
sni_require_tls = false)")) ==
          "t.toml:12:19: service[1].sni_require_tls: false conflicts with true set on another "
          "service of listen 127.0.0.1:8443");
    CHECK(error_of(shared_listen(R"(server_names = ["a.test"]
accept_proxy = true)",
                                 R"(server_names = ["b.test"])")) ==
          "t.toml:8:1: service[1].accept_proxy: must be the same as service[0]'s: they share "
          "listen 127.0.0.1:8443");
    CHECK(error_of(R"([[service]]
name = "a"
listen = "127.0.0.1:8443"
sni_require_tls = false
[[service.backend]]
address = "127.0.0.1:3001"
)") == "t.toml:4:19: service[0].sni_require_tls: needs server_names");
}

TEST_CASE("to_toml writes server names only where they are set", "[config][to_toml][sni]") {
    CHECK_THAT(to_toml(load(minimal)), !Contains("server_names"));
    const std::string text =
        to_toml(load(shared_listen(R"(server_names = ["a.test"])", R"(server_names = ["*"])")));
    CHECK_THAT(text, Contains("server_names = [\"a.test\"]\npreread_timeout = \"5s\"\n"
                              "sni_require_tls = true\n"));
}

namespace {

// `minimal` with these lines in its [service.health] table, from line 4 on.
std::string with_health(std::string_view lines) {
    return fmt::format(R"([[service]]
name = "web"
listen = "127.0.0.1:8080"
[service.health]
{}
[[service.backend]]
address = "127.0.0.1:3001"
)",
                       lines);
}

}  // namespace

TEST_CASE("health check types and their keys", "[config]") {
    CHECK(load(minimal).services[0].health.type == CheckType::http);
    for (const auto& [name, type] : {std::pair{"http", CheckType::http},
                                     {"tcp", CheckType::tcp},
                                     {"send-expect", CheckType::send_expect},
                                     {"redis", CheckType::redis},
                                     {"postgres", CheckType::postgres},
                                     {"mysql", CheckType::mysql}}) {
        INFO(name);
        CHECK(load(with_health(fmt::format("type = \"{}\"", name))).services[0].health.type ==
              type);
        CHECK(to_string(type) == name);
    }
    const HealthConfig text =
        load(with_health("type = \"send-expect\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\""))
            .services[0]
            .health;
    CHECK(text.send == "PING\r\n");
    CHECK(text.expect == "+PONG");
    const HealthConfig hex =
        load(with_health("type = \"send-expect\"\nsend_hex = \"50494E470d0a\"\nexpect_hex = \"\""))
            .services[0]
            .health;
    CHECK(hex.send == "PING\r\n");
    CHECK(hex.expect.empty());
    // Every other key keeps its meaning for every type.
    const HealthConfig redis = load(with_health("type = \"redis\"\nport = 6380\ninterval = "
                                                "\"5s\"\ntimeout = \"2s\"\nrise = 1\nfall = 1"))
                                   .services[0]
                                   .health;
    CHECK(redis.port == 6380);
    CHECK(redis.timeout == 2s);
}

TEST_CASE("health keys of another check type are errors", "[config][errors]") {
    CHECK(error_of(with_health("send = \"PING\\r\\n\"")) ==
          "t.toml:5:8: service[0].health.send: applies only to type = \"send-expect\" (type is "
          "\"http\")");
    CHECK(errors_of(with_health("type = \"tcp\"\npath = \"/x\"\nexpect_status = \"200\"\nhost = "
                                "\"h\"\nexpect_hex = \"00\"")) ==
          Errors{
              "t.toml:6:8: service[0].health.path: applies only to type = \"http\" (type is "
              "\"tcp\")",
              "t.toml:7:17: service[0].health.expect_status: applies only to type = \"http\" "
              "(type is \"tcp\")",
              "t.toml:8:8: service[0].health.host: applies only to type = \"http\" (type is "
              "\"tcp\")",
              "t.toml:9:14: service[0].health.expect_hex: applies only to type = "
              "\"send-expect\" (type is \"tcp\")",
          });
    CHECK(error_of(with_health("type = \"redis\"\nsend = \"PING\\r\\n\"")) ==
          "t.toml:6:8: service[0].health.send: applies only to type = \"send-expect\" (type is "
          "\"redis\")");
    // With a wrong type only the type is reported.
    CHECK(error_of(with_health("type = \"smtp\"\nsend = \"HELO\\r\\n\"")) ==
          "t.toml:5:8: service[0].health.type: unknown value \"smtp\"; valid values: \"http\", "
          "\"tcp\", \"send-expect\", \"redis\", \"postgres\", \"mysql\"");
}

TEST_CASE("send-expect bytes: hex, one spelling each, a bounded expect", "[config][errors]") {
    CHECK(error_of(with_health("type = \"send-expect\"\nsend_hex = \"50494g\"")) ==
          "t.toml:6:12: service[0].health.send_hex: \"50494g\" is not hex; write two hex digits "
          "per byte, e.g. \"50494e470d0a\"");
    CHECK(error_of(with_health("type = \"send-expect\"\nexpect_hex = \"504\"")) ==
          "t.toml:6:14: service[0].health.expect_hex: \"504\" is not hex; write two hex digits "
          "per byte, e.g. \"50494e470d0a\"");
    CHECK(error_of(with_health("type = \"send-expect\"\nsend = \"a\"\nsend_hex = \"61\"")) ==
          "t.toml:7:12: service[0].health.send_hex: set either send or send_hex, not both");
    CHECK(error_of(with_health("type = \"send-expect\"\nsend_hex = 12")) ==
          "t.toml:6:12: service[0].health.send_hex: expected a string, got an integer");
    CHECK(error_of(with_health(fmt::format("type = \"send-expect\"\nexpect = \"{}\"",
                                           std::string(max_expect_bytes + 1, 'x')))) ==
          "t.toml:6:10: service[0].health.expect: must be at most 1024 bytes");
    CHECK(load(with_health(fmt::format("type = \"send-expect\"\nexpect = \"{}\"",
                                       std::string(max_expect_bytes, 'x'))))
              .services[0]
              .health.expect.size() == max_expect_bytes);
}
