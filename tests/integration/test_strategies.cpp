// Balancing strategies through the real binary: each one serves, least-connections steers
// new connections away from a busy backend, source-hash keeps a client on one backend.

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

// Backends named b0, b1, ... that answer each connection with their name and a newline,
// then hold it until the other side closes.
std::vector<std::unique_ptr<ScriptedServer>> named_backends(int count) {
    std::vector<std::unique_ptr<ScriptedServer>> backends;
    for (int i = 0; i < count; ++i) {
        backends.push_back(
            std::make_unique<ScriptedServer>([name = "b" + std::to_string(i)](Socket socket) {
                socket.send_all(name + "\n");
                socket.read_until_closed();
            }));
    }
    return backends;
}

// A service over `backends` (named b0, b1, ... in order) with `strategy`.
ServiceSpec service_with(std::string_view strategy,
                         const std::vector<std::unique_ptr<ScriptedServer>>& backends) {
    std::vector<std::uint16_t> ports;
    for (const auto& backend : backends) ports.push_back(backend->port());
    return service_to(ports, "strategy = \"" + std::string(strategy) + "\"");
}

// A client connection through fulcrum and the name of the backend that answered it.
struct Connection {
    Socket socket;
    std::string backend;
};

Connection connect_through(std::uint16_t port) {
    Connection c{connect_to(port, 10), ""};
    std::string line;
    while (line.find('\n') == std::string::npos) {
        std::string chunk = c.socket.read_some();
        if (chunk.empty()) throw std::runtime_error("EOF before a backend name: " + line);
        line += chunk;
    }
    c.backend = line.substr(0, line.find('\n'));
    return c;
}

// How many connections each backend answered, as "b0:3 b1:3".
std::string count_backends(const std::vector<Connection>& connections) {
    std::map<std::string, int> counts;
    for (const Connection& c : connections) ++counts[c.backend];
    std::string text;
    for (const auto& [name, count] : counts) {
        text += (text.empty() ? "" : " ") + name + ":" + std::to_string(count);
    }
    return text;
}

int ended_sessions(Fulcrum& fulcrum) {
    const std::string output = fulcrum.process().output();
    int count = 0;
    for (auto at = output.find("access client="); at != std::string::npos;
         at = output.find("access client=", at + 1)) {
        ++count;
    }
    return count;
}

}  // namespace

TEST_CASE("every strategy serves connections", "[strategies]") {
    auto backends = named_backends(2);
    for (std::string_view strategy :
         {"round-robin", "least-connections", "random-two", "source-hash"}) {
        INFO(strategy);
        const ServiceSpec service = service_with(strategy, backends);
        const std::uint16_t listen = service.listen;
        Fulcrum fulcrum = start_fulcrum({service});
        for (int i = 0; i < 4; ++i) {
            const std::string backend = connect_through(listen).backend;
            CHECK((backend == "b0" || backend == "b1"));
        }
    }
}

TEST_CASE("least-connections: new connections avoid a backend holding long sessions",
          "[strategies]") {
    auto backends = named_backends(3);
    const ServiceSpec service = service_with("least-connections", backends);
    const std::uint16_t listen = service.listen;
    Fulcrum fulcrum = start_fulcrum({service});

    // Nine sessions: all backends tie at each step, so they take turns, three each.
    std::vector<Connection> first;
    for (int i = 0; i < 9; ++i) first.push_back(connect_through(listen));
    CHECK(count_backends(first) == "b0:3 b1:3 b2:3");

    // Close those on b1 and b2: b0 alone holds three sessions.
    std::vector<Connection> held;
    for (Connection& c : first) {
        if (c.backend == "b0") held.push_back(std::move(c));
    }
    first.clear();
    REQUIRE(poll_until([&] { return ended_sessions(fulcrum) == 6; }, 10s));

    // New sessions go to b1 and b2 until those are as busy as b0.
    std::vector<Connection> next;
    for (int i = 0; i < 6; ++i) next.push_back(connect_through(listen));
    CHECK(count_backends(next) == "b1:3 b2:3");
}

TEST_CASE("source-hash: a client keeps reaching one backend, on every worker", "[strategies]") {
    auto backends = named_backends(3);
    const ServiceSpec service = service_with("source-hash", backends);
    const std::uint16_t listen = service.listen;
    // Two workers, each with its own table: connections from different source ports are
    // spread over them by the kernel, and they must agree.
    Fulcrum fulcrum = start_fulcrum({service}, "workers = 2");

    const std::string home = connect_through(listen).backend;
    for (int i = 0; i < 20; ++i) CHECK(connect_through(listen).backend == home);

    SECTION("when that backend is down, the client moves to one other backend") {
        const auto home_index = static_cast<std::size_t>(home.back() - '0');
        backends.at(home_index).reset();  // its port now refuses connections
        const std::string second_home = connect_through(listen).backend;
        CHECK(second_home != home);
        for (int i = 0; i < 10; ++i) CHECK(connect_through(listen).backend == second_home);
    }
}

TEST_CASE("round-robin is global across workers: strict alternation, 3:1 in every window of four",
          "[strategies]") {
    auto backends = named_backends(2);
    const ServiceSpec service = service_with("round-robin", backends);
    const std::uint16_t listen = service.listen;

    SECTION("equal weights alternate, whichever worker accepts") {
        Fulcrum fulcrum(config_for({service}, "workers = 2"), {listen});
        std::string order;
        for (int i = 0; i < 8; ++i) order += connect_through(listen).backend + " ";
        CHECK(order == "b0 b1 b0 b1 b0 b1 b0 b1 ");
    }
    SECTION("weights 3:1") {
        std::string config = config_for({service}, "workers = 2");
        const std::string b0 = "name = \"b0\"\n";
        config.replace(config.find(b0), b0.size(), b0 + "weight = 3\n");
        Fulcrum fulcrum(config, {listen});
        std::vector<std::string> order;
        for (int i = 0; i < 16; ++i) order.push_back(connect_through(listen).backend);
        for (std::size_t window = 0; window + 4 <= order.size(); window += 4) {
            INFO("connections " << window << " to " << window + 3);
            CHECK(std::count(order.begin() + static_cast<long>(window),
                             order.begin() + static_cast<long>(window) + 4, "b1") == 1);
        }
    }
}

TEST_CASE("least-connections counts the sessions of every worker", "[strategies]") {
    auto backends = named_backends(3);
    const ServiceSpec service = service_with("least-connections", backends);
    const std::uint16_t listen = service.listen;
    Fulcrum fulcrum(config_for({service}, "workers = 2"), {listen});
    // Held sessions, accepted by either worker: each pick sees all of them.
    std::vector<Connection> held;
    for (int i = 0; i < 12; ++i) held.push_back(connect_through(listen));
    CHECK(count_backends(held) == "b0:4 b1:4 b2:4");
}
