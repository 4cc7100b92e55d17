// Shutdown and reload through the real binary: no connection is cut by either.

#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <utility>

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
    // The line is logged as the workers are told; each closes its listener soon after.
    CHECK(poll_until([&] { return refused(service.listen); }, 5s));

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
    Socket idle = established_session(service.listen);

    fulcrum.process().send_signal(SIGTERM);
    CHECK(idle.read_until_closed() == 0);
    CHECK(fulcrum.process().wait_exit(10s) == 0);
    CHECK(fulcrum.process().output().find("end=shutdown") != std::string::npos);
}

TEST_CASE("a second signal exits at once", "[lifecycle]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service}, "shutdown_timeout = \"1h\"");
    Socket idle = established_session(service.listen);

    fulcrum.process().send_signal(SIGTERM);
    REQUIRE(fulcrum.process().wait_for_output("closing listeners", 5s));
    CHECK(fulcrum.process().running());  // still draining the idle session
    fulcrum.process().send_signal(SIGINT);
    CHECK(fulcrum.process().wait_exit(5s).has_value());
    CHECK(fulcrum.process().output().find("second") != std::string::npos);
}

TEST_CASE("SIGHUP adding a backend: new connections reach it", "[lifecycle][reload]") {
    NamedEcho a("a");
    NamedEcho b("b");
    ServiceSpec service = service_to({a.port()});
    Fulcrum fulcrum = start_fulcrum({service});
    CHECK(connect_named(service.listen).second == "a");

    service.backends.push_back(b.port());
    reload(fulcrum, config_for({service}), 1);
    CHECK(fulcrum.process().output().find("service svc changed: backends +b1") !=
          std::string::npos);
    std::set<std::string> names;
    for (int i = 0; i < 4; ++i) names.insert(connect_named(service.listen).second);
    CHECK(names == std::set<std::string>{"a", "b"});
}

TEST_CASE("SIGHUP removing a backend: its session completes, new ones avoid it",
          "[lifecycle][reload]") {
    NamedEcho a("a");
    NamedEcho b("b");
    ServiceSpec service = service_to({a.port(), b.port()});
    Fulcrum fulcrum = start_fulcrum({service});
    auto [in_flight, name] = connect_named(service.listen);
    REQUIRE(name == "a");

    service.backends = {b.port()};
    reload(fulcrum, config_for({service}), 1);
    for (int i = 0; i < 4; ++i) CHECK(connect_named(service.listen).second == "b");

    const std::string data = pattern(4 * MiB, 9);
    in_flight.send_all(data);
    CHECK(in_flight.read_exact(data.size()) == data);
}

TEST_CASE("SIGHUP with an invalid file keeps the running configuration", "[lifecycle][reload]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    Fulcrum fulcrum = start_fulcrum({service});
    reload(fulcrum, "[[service]]\nname = \"svc\"\nlistn = \"x\"\n", 1);
    const std::string log = fulcrum.process().output();
    INFO(log);
    CHECK(log.find("fulcrum.toml:3:9: service[0].listn: unknown key; did you mean 'listen'?") !=
          std::string::npos);
    CHECK(log.find("reload rejected: still running the previous configuration") !=
          std::string::npos);
    CHECK(connect_named(service.listen).second == "a");
}

TEST_CASE("SIGHUP adding and removing services opens and closes their listeners",
          "[lifecycle][reload]") {
    NamedEcho a("a");
    ServiceSpec first = service_to({a.port()}, "", "first");
    ServiceSpec second = service_to({a.port()}, "", "second");
    Fulcrum fulcrum = start_fulcrum({first});
    CHECK(refused(second.listen));

    reload(fulcrum, config_for({first, second}), 1);
    CHECK(connect_named(second.listen).second == "a");

    reload(fulcrum, config_for({second}), 2);
    CHECK(poll_until([&] { return refused(first.listen); }, 5s));
    CHECK(connect_named(second.listen).second == "a");
}

TEST_CASE("20 reloads under a connect loop: no refused connect, no reset", "[lifecycle][reload]") {
    NamedEcho a("a");
    NamedEcho b("b");
    ServiceSpec service = service_to({a.port(), b.port()});
    Fulcrum fulcrum = start_fulcrum({service});

    std::atomic<bool> done{false};
    std::atomic<int> served{0};
    std::atomic<int> failed{0};
    std::thread client([&] {
        while (!done) {
            try {
                auto [socket, name] = connect_named(service.listen);
                socket.send_all("ping");
                if (socket.read_exact(4) == "ping") ++served;
            } catch (const std::exception&) {
                ++failed;
            }
        }
    });
    for (std::size_t i = 1; i <= 20; ++i) {
        // Alternate weights so every reload really changes the pool.
        ServiceSpec changed = service;
        changed.settings = i % 2 == 0 ? "strategy = \"round-robin\"" : "retries = 1";
        reload(fulcrum, config_for({changed}), i);
    }
    done = true;
    client.join();
    CHECK(failed.load() == 0);
    CHECK(served.load() > 20);
}

TEST_CASE("50 reloads leak no descriptor", "[lifecycle][reload]") {
    NamedEcho a("a");
    ServiceSpec kept = service_to({a.port()}, "", "kept");
    ServiceSpec toggled = service_to({a.port()}, "", "toggled");
    Fulcrum fulcrum = start_fulcrum({kept});
    const int before = fulcrum.process().fd_count();
    for (std::size_t i = 1; i <= 50; ++i) {
        reload(fulcrum, config_for(i % 2 == 1 ? std::vector{kept, toggled} : std::vector{kept}), i);
    }
    // The last reload removed "toggled": wait until its listener is gone.
    CHECK(poll_until([&] { return refused(toggled.listen); }, 5s));
    CHECK(poll_until([&] { return fulcrum.process().fd_count() == before; }, 5s));
    CHECK(fulcrum.process().fd_count() == before);
    CHECK(connect_named(kept.listen).second == "a");
}

TEST_CASE("a second fulcrum on an address one already serves exits 1: address in use",
          "[lifecycle]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    Fulcrum first = start_fulcrum({service});
    const RunResult second = run_fulcrum({"-c", first.config_path()});
    CHECK(second.exit_code == 1);
    CHECK(second.output.find("address in use") != std::string::npos);
    // The first one kept all of its traffic.
    for (int i = 0; i < 4; ++i) CHECK(connect_named(service.listen).second == "a");
}

TEST_CASE("--log-level on the command line wins over log.level on reload", "[lifecycle][reload]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    std::string config = config_for({service});
    const std::string debug = "level = \"debug\"";
    config.replace(config.find(debug), debug.size(), "level = \"error\"");
    Fulcrum fulcrum(config, {service.listen}, {"--log-level", "info"});
    // The "reloaded" line is at info: with the file's level it would not be logged.
    reload(fulcrum, config, 1);
    CHECK(connect_named(service.listen).second == "a");
    CHECK(fulcrum.process().wait_for_output("access client=", 5s));
}

TEST_CASE("a descriptor limit below what the configuration may use is named in one warning",
          "[lifecycle]") {
    NamedEcho a("a");
    const ServiceSpec service = service_to({a.port()});
    SECTION("the defaults under 256 descriptors") {
        Fulcrum fulcrum(config_for({service}), {service.listen}, {},
                        {.max_open_files = 256, .tsan_suppressions = ""});
        // 2 x 10,000 connections + 2 x 1,024 pipes + 1 listener per worker + 64.
        const std::string needed = std::to_string(2 * 10000 + 2 * 1024 + default_workers() + 64);
        CHECK(fulcrum.process().wait_for_output(
            "descriptor limit 256 is below the " + needed + " that max_connections", 5s));
        CHECK(count_of(fulcrum.process().output(), "descriptor limit") == 1);
        CHECK(connect_named(service.listen).second == "a");  // it serves all the same
    }
    SECTION("a configuration that fits says nothing") {
        Fulcrum fulcrum(config_for({service}, "max_connections = 100\nsplice_pipes = 16"),
                        {service.listen}, {}, {.max_open_files = 512, .tsan_suppressions = ""});
        CHECK(connect_named(service.listen).second == "a");
        CHECK(fulcrum.process().output().find("descriptor limit") == std::string::npos);
    }
}
