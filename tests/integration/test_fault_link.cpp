// Integrity through an impaired link: 8 MiB echoed both ways through fulcrum, compared by
// SHA-256, while the link between fulcrum and its backend, or between a client and
// fulcrum, delays (20 ms each way), drops (1%), duplicates (1%) and reorders (5%)
// packets. The kernel has no sch_netem: the link is a pair of TUN devices joined by
// tests/support/impair_relay.cpp, one end in this process's network namespace and one in
// a namespace of the relay's own. Both vanish with the relay, however it ends, so there
// are no names to clean up. Without root, TUN devices or namespaces the test says so
// with a warning and passes.

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

#ifndef IMPAIR_RELAY_BINARY
#error "define IMPAIR_RELAY_BINARY (tests/meson.build does)"
#endif

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t MiB = 1024 * 1024;

// The relay cannot get TUN devices or a network namespace on this machine.
struct Unsupported : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string ipv4_text(std::uint32_t host_order) {
    in_addr address{htonl(host_order)};
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &address, text, sizeof text);
    return text;
}

sockaddr_in ipv4_address(const std::string& host, std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
        throw std::runtime_error("not an IPv4 address: " + host);
    }
    return address;
}

// A point-to-point link through impair_relay: the outer end here, the inner end in the
// relay's namespace. Its addresses are a /30 of 198.18.0.0/15 (set aside for network
// tests) picked by pid, so concurrent test processes route apart.
class ImpairedLink {
public:
    // A jumbo MTU keeps TCP fast despite the loss: a transfer takes seconds, where a
    // 1500-byte MTU makes it take tens of seconds.
    ImpairedLink() {
        const std::uint32_t base =
            (198U << 24 | 18U << 16) + (static_cast<std::uint32_t>(::getpid()) % 32768U) * 4U;
        outer_ = ipv4_text(base + 1);
        inner_ = ipv4_text(base + 2);
        relay_.emplace(std::vector<std::string>{IMPAIR_RELAY_BINARY, "--outer", outer_, "--inner",
                                                inner_, "--mtu", "9000", "--delay-ms", "20",
                                                "--loss", "0.01", "--duplicate", "0.01",
                                                "--reorder", "0.05", "--seed", "22"});
        if (!relay_->wait_for_output("ready ", 10s)) {
            const std::optional<int> exit_code = relay_->wait_exit(0ms);
            const std::string output = relay_->output();
            if (exit_code == 77) throw Unsupported(output);
            throw std::runtime_error("impair_relay did not get ready:\n" + output);
        }
        const std::string path = "/proc/" + std::to_string(relay_->pid()) + "/ns/net";
        namespace_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (namespace_fd_ < 0)
            throw std::runtime_error("open " + path + ": " + std::strerror(errno));
    }
    ~ImpairedLink() {
        if (namespace_fd_ >= 0) ::close(namespace_fd_);
    }
    ImpairedLink(const ImpairedLink&) = delete;
    ImpairedLink& operator=(const ImpairedLink&) = delete;

    const std::string& outer() const { return outer_; }
    const std::string& inner() const { return inner_; }

    // Runs `make` on a thread of its own inside the inner namespace; a socket keeps the
    // namespace it was made in, whichever thread uses it later.
    Socket inside(const std::function<Socket()>& make) const {
        return std::async(
                   std::launch::async,
                   [&] {
                       if (::setns(namespace_fd_, CLONE_NEWNET) != 0) {
                           throw std::runtime_error(std::string("setns: ") + std::strerror(errno));
                       }
                       return make();
                   })
            .get();
    }

    // Stops the relay and returns its counts: "relay: forwarded=N dropped=N ...".
    std::string stop() {
        relay_->send_signal(SIGTERM);
        if (relay_->wait_exit(10s) != 0) {
            throw std::runtime_error("impair_relay did not stop cleanly:\n" + relay_->output());
        }
        const std::string output = relay_->output();
        const std::size_t at = output.find("relay: ");
        if (at == std::string::npos)
            throw std::runtime_error("no counts from impair_relay:\n" + output);
        return output.substr(at, output.find('\n', at) - at);
    }

private:
    std::string outer_;
    std::string inner_;
    std::optional<ChildProcess> relay_;
    int namespace_fd_ = -1;
};

// The count after "name=" in the relay's counts line.
std::uint64_t count_in(const std::string& counts, const std::string& name) {
    const std::size_t at = counts.find(name + "=");
    if (at == std::string::npos) throw std::runtime_error("no " + name + " in " + counts);
    return std::stoull(counts.substr(at + name.size() + 1));
}

// Two 8 MiB echoes at once, each on a connection from `connect`; every byte is compared
// by SHA-256 both ways. Returns the seconds they took.
double echo_two(const std::function<Socket()>& connect) {
    const auto begin = std::chrono::steady_clock::now();
    std::vector<std::future<Transfer>> transfers;
    for (int i = 0; i < 2; ++i) {
        transfers.push_back(
            std::async(std::launch::async, [&] { return echo_over(connect(), 8 * MiB); }));
    }
    for (auto& transfer : transfers) {
        const Transfer t = transfer.get();
        CHECK(t.received == 8 * MiB);
        CHECK(t.received_hash == t.sent_hash);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
}

// Stops the relay and checks that the link really was impaired; prints the figures.
void check_impaired(ImpairedLink& link, const std::string& where, double seconds) {
    const std::string counts = link.stop();
    INFO(counts);
    CHECK(count_in(counts, "dropped") > 0);
    CHECK(count_in(counts, "duplicated") > 0);
    CHECK(count_in(counts, "reordered") > 0);
    std::cout << "impaired link " << where << ": 2 x 8 MiB echoed in " << seconds << " s; "
              << counts << std::endl;
}

// Whether this machine can make the link; WARNs why not.
bool link_possible() {
    if (::geteuid() != 0) {
        WARN("skipped: an impaired link needs root (TUN devices, a network namespace)");
        return false;
    }
    return true;
}

}  // namespace

TEST_CASE("8 MiB each way stays intact through a delaying, lossy, duplicating, reordering link",
          "[fault][link]") {
    if (!link_possible()) return;
    // Each section builds its own link: a fresh relay, a fresh namespace.
    std::optional<ImpairedLink> link;
    try {
        link.emplace();
    } catch (const Unsupported& unsupported) {
        WARN("skipped: impair_relay cannot make its link here:\n" << unsupported.what());
        return;
    }

    SECTION("between fulcrum and the backend") {
        EchoServer echo(
            link->inside([&] { return listen_at(ipv4_address(link->inner(), 0), 64); }));
        ServiceSpec service = service_to({echo.port()}, "connect_timeout = \"10s\"");
        service.backend_host = link->inner();
        Fulcrum fulcrum = start_fulcrum({service});
        const double seconds = echo_two([&] { return connect_to(service.listen, 60); });
        check_impaired(*link, "fulcrum-backend", seconds);
    }
    SECTION("between the client and fulcrum") {
        EchoServer echo;
        ServiceSpec service = service_to({echo.port()});
        service.listen_host = link->outer();
        Fulcrum fulcrum = start_fulcrum({service});
        const double seconds = echo_two([&] {
            return link->inside(
                [&] { return connect_at(ipv4_address(link->outer(), service.listen), 60); });
        });
        check_impaired(*link, "client-fulcrum", seconds);
    }
}
