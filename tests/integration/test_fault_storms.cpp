// Storms through the real binary: SIGHUPs by the dozen while clients keep transferring,
// and resets by the hundred from clients and from backends. Afterwards every byte must
// have matched, no connection may have failed, and fulcrum must hold no descriptor and
// no session more than before.

#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/prometheus_text.hpp"
#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// Open descriptors of `process` by kind ("socket", "anon_inode:[eventfd]", a file's path),
// pipes left out: fulcrum keeps spare splice pipes for reuse (pipes in use have a gauge).
std::map<std::string, int> descriptors_besides_pipes(const ChildProcess& process) {
    std::map<std::string, int> kinds;
    std::error_code error;  // descriptors may close while we look
    const std::string directory = "/proc/" + std::to_string(process.pid()) + "/fd";
    for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
        std::string target = std::filesystem::read_symlink(entry.path(), error).string();
        if (target.starts_with("socket:[")) target = "socket";
        if (!target.empty() && !target.starts_with("pipe:")) ++kinds[target];
    }
    return kinds;
}

std::string describe(const std::map<std::string, int>& kinds) {
    std::string text;
    for (const auto& [kind, count] : kinds) text += std::to_string(count) + " " + kind + "; ";
    return text;
}

// The access log lines in `log` that contain `has` but not `lacks`.
std::string access_lines_without(const std::string& log, const std::string& has,
                                 const std::string& lacks) {
    std::istringstream lines(log);
    std::string found;
    for (std::string line; std::getline(lines, line);) {
        if (line.find(" access ") != std::string::npos && line.find(has) != std::string::npos &&
            line.find(lacks) == std::string::npos) {
            found += line + "\n";
        }
    }
    return found;
}

// The first failure of many threads, for the report.
class FirstFailure {
public:
    void record(const std::string& what) {
        ++count_;
        const std::lock_guard lock(mutex_);
        if (first_.empty()) first_ = what;
    }
    int count() const { return count_.load(); }
    std::string first() const {
        const std::lock_guard lock(mutex_);
        return first_;
    }

private:
    std::atomic<int> count_{0};
    mutable std::mutex mutex_;
    std::string first_;
};

}  // namespace

TEST_CASE("80 SIGHUPs between two configurations while clients transfer: every byte intact",
          "[fault][reload]") {
    EchoServer first;
    EchoServer second;
    EchoServer third;
    // The configurations differ in strategy, retries and backends: b0 and b1 change
    // address at every reload, and the first echo server leaves and comes back.
    ServiceSpec one = service_to({first.port(), second.port()}, "strategy = \"round-robin\"");
    ServiceSpec other = one;
    other.backends = {second.port(), third.port()};
    other.settings = "strategy = \"least-connections\"\nretries = 1";
    Fulcrum fulcrum = start_fulcrum({one});

    std::atomic<bool> done{false};
    std::atomic<int> transfers{0};
    FirstFailure failures;
    std::vector<std::thread> clients;
    for (std::uint64_t client = 0; client < 4; ++client) {
        clients.emplace_back([&, client] {
            for (std::size_t round = 0; !done; ++round) {
                const std::size_t size = 64 * KiB + (client * 7 + round) % 16 * 60 * KiB;
                try {
                    const Transfer t = echo_through(one.listen, size);
                    if (t.received != size || t.received_hash != t.sent_hash) {
                        failures.record("client " + std::to_string(client) + ": " +
                                        std::to_string(t.received) + " of " + std::to_string(size) +
                                        " bytes, hashes " + t.sent_hash + " / " + t.received_hash);
                    } else {
                        ++transfers;
                    }
                } catch (const std::exception& error) {
                    failures.record("client " + std::to_string(client) + ": " + error.what());
                }
            }
        });
    }
    constexpr std::size_t reloads = 80;
    const auto begin = std::chrono::steady_clock::now();
    for (std::size_t i = 1; i <= reloads; ++i) {
        reload(fulcrum, config_for({i % 2 == 1 ? other : one}), i);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    // A few more transfers on the last configuration, so every client saw the storm end.
    const int after_storm = transfers.load() + 8;
    poll_until([&] { return transfers.load() >= after_storm || failures.count() > 0; }, 30s);
    done = true;
    for (auto& client : clients) client.join();

    INFO(failures.first());
    CHECK(failures.count() == 0);
    CHECK(transfers.load() >= after_storm);
    CHECK(fulcrum.process().running());
    const std::string log = fulcrum.process().output();
    CHECK(count_of(log, "reload rejected") == 0);
    CHECK(count_of(log, "reloaded ") == reloads);
    std::cout << "reload storm: " << reloads << " reloads in " << seconds << " s, "
              << transfers.load() << " transfers intact, " << failures.count() << " failed"
              << std::endl;
}

TEST_CASE("reset storms from clients and from backends leave nothing behind", "[fault][reset]") {
    EchoServer echo;
    // Reads the client's first bytes, answers with 64 KiB, then resets.
    ScriptedServer resetting([](Socket s) {
        s.read_some();
        s.send_all(pattern(64 * KiB, 3));
        s.reset();
    });
    ServiceSpec to_echo = service_to({echo.port()}, "", "echo");
    ServiceSpec to_resetting = service_to({resetting.port()}, "", "resetting");
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum(config_for({to_echo, to_resetting}, "max_connections = 5000") +
                        "[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin) + "\"\n",
                    {admin, to_echo.listen, to_resetting.listen});

    // The baseline after sessions on every worker, for what a worker sets up for good at
    // its first (libuv reserves a descriptor for running out of them, a spare pipe): 64
    // at once, which the kernel spreads over the workers' listeners. And it is taken
    // before any admin request, whose connection fulcrum closes a little later.
    constexpr int warm_up_sessions = 64;
    REQUIRE(run_echo_clients(to_echo.listen, warm_up_sessions, 1 * MiB, 60) == warm_up_sessions);
    REQUIRE(poll_until(
        [&] { return count_of(fulcrum.process().output(), "access client=") == warm_up_sessions; },
        10s));
    const std::map<std::string, int> descriptors_before =
        descriptors_besides_pipes(fulcrum.process());
    const long rss_before = fulcrum.process().rss_kib();

    // Clients that send, then reset: half at once, half once their session is through
    // to the backend (one byte echoed).
    constexpr int client_resets = 800;
    constexpr int wave = 100;
    const std::string request = pattern(4 * KiB, 5);
    for (int begun = 0; begun < client_resets; begun += wave) {
        std::vector<Socket> sockets;
        for (int i = 0; i < wave; ++i) sockets.push_back(connect_to(to_echo.listen));
        for (int i = 0; i < wave; ++i) {
            sockets[static_cast<std::size_t>(i)].send_all(request);
            if (i % 2 == 1) {
                REQUIRE(sockets[static_cast<std::size_t>(i)].read_exact(1) == request.substr(0, 1));
            }
        }
        for (Socket& socket : sockets) socket.reset();
    }

    // Backends that reset mid-stream: each client's connection must end with a reset,
    // even when the reset comes right behind the backend's last bytes (libuv then reports
    // an end of file; fulcrum finds the reset pending on the socket).
    constexpr int backend_resets = 300;
    std::map<int, int> endings;  // errno of the end (0: a clean EOF) -> how many
    // A connection left open ends the storm at its first 10 s timeout (EAGAIN).
    for (int begun = 0; begun < backend_resets && endings.count(EAGAIN) == 0; begun += wave / 2) {
        std::vector<Socket> sockets;
        for (int i = 0; i < wave / 2; ++i) {
            sockets.push_back(connect_to(to_resetting.listen, 10));
            sockets.back().send_all("hello");
        }
        for (const Socket& socket : sockets) {
            if (endings.count(EAGAIN) == 0) ++endings[socket.read_until_closed()];
        }
    }
    std::string ending_counts;
    for (const auto& [error, count] : endings) {
        ending_counts += std::to_string(count) + " with errno " + std::to_string(error) + "; ";
    }
    INFO("endings: " << ending_counts);
    INFO("sessions that did not end in a backend reset:\n"
         << access_lines_without(fulcrum.process().output(), "service=resetting",
                                 "end=backend-reset"));
    CHECK(endings[ECONNRESET] == backend_resets);

    CHECK(poll_until([&] { return scrape(admin).value("fulcrum_client_connections") == 0; }, 10s));
    const Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_splice_pipes_in_use") == 0);
    for (const ServiceSpec& service : {to_echo, to_resetting}) {
        CHECK(metrics.value("fulcrum_backend_active_connections",
                            {{"service", service.name}, {"backend", "b0"}}) == 0);
    }
    CHECK(poll_until(
        [&] { return descriptors_besides_pipes(fulcrum.process()) == descriptors_before; }, 10s));
    const std::map<std::string, int> descriptors_after =
        descriptors_besides_pipes(fulcrum.process());
    INFO("descriptors before: " << describe(descriptors_before));
    INFO("descriptors after: " << describe(descriptors_after));
    CHECK(descriptors_after == descriptors_before);
    const long rss_after = fulcrum.process().rss_kib();

    // Still proxying, byte for byte.
    const Transfer after = echo_through(to_echo.listen, 8 * MiB);
    CHECK(after.received == 8 * MiB);
    CHECK(after.received_hash == after.sent_hash);
    std::cout << "reset storms: " << client_resets << " client resets, " << backend_resets
              << " backend resets; descriptors (besides pipes) " << describe(descriptors_before)
              << " -> " << describe(descriptors_after) << "; RSS " << rss_before << " KiB -> "
              << rss_after << " KiB" << std::endl;
}
