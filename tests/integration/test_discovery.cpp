// Backends from DNS ([service.discovery]): a real dnsmasq on a free loopback port serves
// A, AAAA and SRV records, changed while fulcrum runs by restarting it with new data; a
// scripted UDP responder answers SERVFAIL or nothing for the resolver-error cases.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using nlohmann::json;

namespace {

const std::string dnsmasq_binary = "/usr/sbin/dnsmasq";

bool have_dnsmasq() {
    if (::access(dnsmasq_binary.c_str(), X_OK) == 0) return true;
    WARN("dnsmasq is not installed (tests/install-deps.sh --test installs it); skipping");
    return false;
}

// dnsmasq answering only from `records` (its configuration lines: host-record=,
// srv-host=) on 127.0.0.1:port, UDP and TCP; names under .test it does not know are
// NXDOMAIN. Records change by restart(): dnsmasq rereads srv-host only at start.
class Dnsmasq {
public:
    Dnsmasq(std::string records, int ttl) : port_(free_port()), ttl_(ttl) {
        restart(std::move(records));
    }

    void restart(std::string records) {
        process_.reset();  // SIGKILL and reap: the port is free again at once
        const std::string conf = dir_.write("dnsmasq.conf", records + "\nlocal=/test/\n");
        std::vector<std::string> argv{dnsmasq_binary,
                                      // Not --no-daemon: that also answers TCP in the
                                      // main process, which then serves no UDP while a
                                      // TCP client (c-ares after a truncation) stays.
                                      "--keep-in-foreground", "--port=" + std::to_string(port_),
                                      "--listen-address=127.0.0.1", "--bind-interfaces",
                                      "--no-resolv", "--no-hosts", "--log-facility=-",
                                      "--pid-file=" + dir_.path() + "/pid",
                                      "--local-ttl=" + std::to_string(ttl_), "--conf-file=" + conf};
        // As root dnsmasq would drop to "nobody", which cannot read the temporary files.
        if (::geteuid() == 0) argv.push_back("--user=root");
        process_.emplace(argv);
        if (!wait_port_open(port_, 10s)) {
            throw std::runtime_error("dnsmasq did not start:\n" + process_->output());
        }
    }

    std::string resolver() const { return "127.0.0.1:" + std::to_string(port_); }

private:
    std::uint16_t port_;
    int ttl_;
    TempDir dir_;
    std::optional<ChildProcess> process_;
};

// "srv-host=NAME,TARGET,PORT,PRIORITY,WEIGHT" and the target's A record.
std::string srv_record(const std::string& name, const std::string& target, std::uint16_t port,
                       int priority, int weight) {
    return "srv-host=" + name + "," + target + "," + std::to_string(port) + "," +
           std::to_string(priority) + "," + std::to_string(weight) + "\nhost-record=" + target +
           ",127.0.0.1\n";
}

// A service with `discovery` (the [service.discovery] lines) and an admin endpoint.
std::string discovery_config(std::uint16_t listen, std::uint16_t admin,
                             const std::string& discovery, const std::string& service_lines = "",
                             const std::string& health = "enabled = false") {
    return "[log]\nlevel = \"debug\"\naccess_log = true\n[runtime]\nworkers = " +
           std::to_string(default_workers()) +
           "\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin) +
           "\"\n[[service]]\nname = \"svc\"\nlisten = \"127.0.0.1:" + std::to_string(listen) +
           "\"\n" + service_lines + "\n[service.health]\n" + health + "\n[service.discovery]\n" +
           discovery + "\n";
}

json service_status(std::uint16_t admin) {
    return status_of(admin)["services"][0];
}

// The names of the service's backends in /status.
std::set<std::string> backend_names(std::uint16_t admin) {
    const json service = service_status(admin);
    std::set<std::string> names;
    for (const json& backend : service["backends"])
        names.insert(backend["name"].get<std::string>());
    return names;
}

bool has_backends(std::uint16_t admin, const std::set<std::string>& names) {
    return backend_names(admin) == names;
}

json backend_named(std::uint16_t admin, const std::string& name) {
    const json service = service_status(admin);
    for (const json& backend : service["backends"]) {
        if (backend["name"] == name) return backend;
    }
    FAIL("no backend " << name);
    return {};
}

double resolutions(std::uint16_t admin, const std::string& result,
                   const std::string& service = "svc") {
    return scrape(admin).value("fulcrum_discovery_resolutions_total",
                               {{"service", service}, {"result", result}});
}

// A UDP DNS server scripted by the test: answers A queries with 127.0.0.1 (TTL 0) and
// others with no records, or SERVFAIL to every query, or nothing at all.
class ScriptedDns {
public:
    enum class Mode { answer, servfail, silent };

    ScriptedDns() : socket_(::socket(AF_INET, SOCK_DGRAM, 0)) {
        sockaddr_in address = loopback(0);
        if (::bind(socket_.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            throw std::runtime_error("cannot bind the DNS responder");
        }
        socklen_t length = sizeof address;
        ::getsockname(socket_.fd(), reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~ScriptedDns() {
        stop_ = true;
        thread_.join();
    }

    void set(Mode mode) { mode_ = mode; }
    std::string resolver() const { return "127.0.0.1:" + std::to_string(port_); }

private:
    void run() {
        while (!stop_) {
            pollfd ready{.fd = socket_.fd(), .events = POLLIN, .revents = 0};
            if (::poll(&ready, 1, 20) <= 0) continue;
            unsigned char query[512];
            sockaddr_in peer{};
            socklen_t peer_length = sizeof peer;
            const ssize_t n = ::recvfrom(socket_.fd(), query, sizeof query, 0,
                                         reinterpret_cast<sockaddr*>(&peer), &peer_length);
            const Mode mode = mode_;
            if (n < 12 || mode == Mode::silent) continue;
            std::size_t end = 12;  // past the question's name, type and class
            while (end < static_cast<std::size_t>(n) && query[end] != 0) end += query[end] + 1;
            end += 5;
            if (end > static_cast<std::size_t>(n)) continue;
            std::string reply(reinterpret_cast<const char*>(query), end);
            const bool a_query = query[end - 4] == 0 && query[end - 3] == 1;
            const bool answer = mode == Mode::answer && a_query;
            reply[2] = static_cast<char>(0x80 | (query[2] & 0x01));              // QR, RD as asked
            reply[3] = static_cast<char>(mode == Mode::servfail ? 0x82 : 0x80);  // RA, rcode
            reply[6] = 0;
            reply[7] = answer ? 1 : 0;                  // ANCOUNT
            reply.replace(8, 4, std::string(4, '\0'));  // NSCOUNT, ARCOUNT
            if (answer) {
                // Name (pointer to the question's), A, IN, TTL 0, 4 bytes: 127.0.0.1.
                reply += std::string(
                    "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01", 16);
            }
            ::sendto(socket_.fd(), reply.data(), reply.size(), 0,
                     reinterpret_cast<sockaddr*>(&peer), peer_length);
        }
    }

    Socket socket_;
    std::uint16_t port_ = 0;
    std::atomic<Mode> mode_{Mode::answer};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

TEST_CASE(
    "dns-srv: weights and priorities; a backend added, one removed while it holds a "
    "session",
    "[dns]") {
    if (!have_dnsmasq()) return;
    NamedEcho a("a");
    NamedEcho b("b");
    NamedEcho c("c");
    NamedEcho backup("backup");
    const std::string name = "_echo._tcp.svc.test";
    Dnsmasq dns(srv_record(name, "a.svc.test", a.port(), 10, 1) +
                    srv_record(name, "b.svc.test", b.port(), 10, 0) +
                    srv_record(name, "backup.svc.test", backup.port(), 20, 5),
                1);
    const std::uint16_t listen = free_port();
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum(
        discovery_config(listen, admin,
                         "type = \"dns-srv\"\nname = \"" + name + "\"\nresolvers = [\"" +
                             dns.resolver() + "\"]\ninterval = \"200ms\"\nmin_ttl = \"100ms\"\n"),
        {listen, admin});
    const std::string a_name = "a.svc.test:" + std::to_string(a.port());
    const std::string b_name = "b.svc.test:" + std::to_string(b.port());
    const std::string c_name = "c.svc.test:" + std::to_string(c.port());
    const std::string backup_name = "backup.svc.test:" + std::to_string(backup.port());
    REQUIRE(poll_until([&] { return has_backends(admin, {a_name, b_name, backup_name}); }, 10s));

    // Weight and priority as the records say; weight 0 counts as 1.
    CHECK(backend_named(admin, a_name)["configured_weight"] == 1);
    CHECK(backend_named(admin, b_name)["configured_weight"] == 1);
    CHECK(backend_named(admin, backup_name)["configured_weight"] == 5);
    CHECK(backend_named(admin, backup_name)["backup"] == true);
    CHECK(backend_named(admin, a_name)["backup"] == false);
    CHECK(backend_named(admin, a_name)["source"] == "dns");
    CHECK(backend_named(admin, a_name)["resolved"] == "127.0.0.1:" + std::to_string(a.port()));
    const json discovery = service_status(admin)["discovery"];
    CHECK(discovery["type"] == "dns-srv");
    CHECK(discovery["backends"] == 3);
    CHECK(discovery["last_resolution"]["result"] == "ok");
    CHECK(resolutions(admin, "ok") >= 1);
    CHECK(scrape(admin).value("fulcrum_discovery_backends", {{"service", "svc"}}) == 3);

    // The backup takes nothing while a primary is routable.
    std::optional<Socket> on_a;
    for (int i = 0; i < 6; ++i) {
        auto [socket, backend] = connect_named(listen);
        CHECK((backend == "a" || backend == "b"));
        if (backend == "a" && !on_a) on_a = std::move(socket);
    }
    REQUIRE(on_a);

    // a leaves the answer, c joins: a's session goes on, new connections go to b and c.
    dns.restart(srv_record(name, "b.svc.test", b.port(), 10, 0) +
                srv_record(name, "c.svc.test", c.port(), 10, 2) +
                srv_record(name, "backup.svc.test", backup.port(), 20, 5));
    REQUIRE(poll_until([&] { return has_backends(admin, {b_name, c_name, backup_name}); }, 10s));
    CHECK(fulcrum.process().wait_for_output("added " + c_name + "; removed " + a_name, 5s));
    on_a->send_all("still here");
    CHECK(on_a->read_exact(10) == "still here");
    std::set<std::string> reached;
    for (int i = 0; i < 6; ++i) reached.insert(connect_named(listen).second);
    CHECK(reached == std::set<std::string>{"b", "c"});
    on_a->send_all("and here");
    CHECK(on_a->read_exact(8) == "and here");
}

TEST_CASE("dns-a: A and AAAA records, a short TTL honoured, a new name on SIGHUP", "[dns]") {
    if (!have_dnsmasq()) return;
    // The same port on 127.0.0.2, [::1] and 127.0.0.3.
    Socket v4_listener = listen_at([] {
        sockaddr_in address = loopback(0);
        address.sin_addr.s_addr = htonl(0x7f000002);
        return address;
    }());
    const std::uint16_t port = local_port(v4_listener);
    EchoServer v4(std::move(v4_listener));
    std::optional<EchoServer> v6;
    std::optional<EchoServer> v4_other;
    {
        sockaddr_in6 address{};
        address.sin6_family = AF_INET6;
        address.sin6_addr = in6addr_loopback;
        address.sin6_port = htons(port);
        Socket socket(::socket(AF_INET6, SOCK_STREAM, 0));
        REQUIRE(::bind(socket.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(socket.fd(), 128) == 0);
        v6.emplace(std::move(socket));
        sockaddr_in other = loopback(port);
        other.sin_addr.s_addr = htonl(0x7f000003);
        v4_other.emplace(listen_at(other));
    }
    // TTL 1 s against an interval of a minute: changes show within seconds.
    Dnsmasq dns("host-record=web.svc.test,127.0.0.2,::1\nhost-record=other.svc.test,127.0.0.3\n",
                1);
    const std::uint16_t listen = free_port();
    const std::uint16_t admin = free_port();
    auto config = [&](const std::string& record) {
        return discovery_config(listen, admin,
                                "type = \"dns-a\"\nname = \"" + record + "\"\nport = " +
                                    std::to_string(port) + "\nresolvers = [\"" + dns.resolver() +
                                    "\"]\ninterval = \"1m\"\nmin_ttl = \"100ms\"\n");
    };
    Fulcrum fulcrum(config("web.svc.test"), {listen, admin});
    const std::string v4_name = "127.0.0.2:" + std::to_string(port);
    const std::string v6_name = "[::1]:" + std::to_string(port);
    REQUIRE(poll_until([&] { return has_backends(admin, {v4_name, v6_name}); }, 10s));
    for (int i = 0; i < 4; ++i) {
        const Transfer transfer = echo_through(listen, 4096);
        CHECK(transfer.received_hash == transfer.sent_hash);
    }
    CHECK(v4.accepted() >= 1);
    CHECK(v6->accepted() >= 1);

    // --check shows the table as it runs.
    const RunResult check = run_fulcrum({"--check", "-c", fulcrum.config_path()});
    CHECK(check.exit_code == 0);
    CHECK_THAT(check.output, Catch::Matchers::Contains("[service.discovery]\ntype = \"dns-a\"\n"
                                                       "name = \"web.svc.test\"\nport = " +
                                                       std::to_string(port)));

    // The AAAA record goes: the TTL, not the minute, brings the change.
    dns.restart("host-record=web.svc.test,127.0.0.2\nhost-record=other.svc.test,127.0.0.3\n");
    REQUIRE(poll_until([&] { return has_backends(admin, {v4_name}); }, 10s));
    CHECK(fulcrum.process().wait_for_output("removed " + v6_name, 5s));

    // A new record name on SIGHUP, no restart.
    reload(fulcrum, config("other.svc.test"), 1);
    const std::string other_name = "127.0.0.3:" + std::to_string(port);
    REQUIRE(poll_until([&] { return has_backends(admin, {other_name}); }, 10s));
    const Transfer transfer = echo_through(listen, 4096);
    CHECK(transfer.received_hash == transfer.sent_hash);
    CHECK(v4_other->accepted() == 1);
}

TEST_CASE(
    "dns: SERVFAIL and a silent server keep the last good answer for hold, then empty "
    "it",
    "[dns]") {
    ScriptedDns dns;
    EchoServer echo;
    const std::uint16_t listen = free_port();
    const std::uint16_t admin = free_port();
    const auto hold = 1500ms;
    Fulcrum fulcrum(
        discovery_config(listen, admin,
                         "type = \"dns-a\"\nname = \"web.svc.test\"\nport = " +
                             std::to_string(echo.port()) + "\nresolvers = [\"" + dns.resolver() +
                             "\"]\ninterval = \"100ms\"\nmin_ttl = \"100ms\"\n"
                             "hold = \"1500ms\"\ntimeout = \"300ms\"\n"),
        {listen, admin});
    const std::string name = "127.0.0.1:" + std::to_string(echo.port());

    for (const auto& [mode, result] : {std::pair{ScriptedDns::Mode::servfail, "servfail"},
                                       std::pair{ScriptedDns::Mode::silent, "timeout"}}) {
        dns.set(ScriptedDns::Mode::answer);
        REQUIRE(poll_until([&] { return has_backends(admin, {name}); }, 10s));
        const double before = resolutions(admin, result);
        const auto failing_since = std::chrono::steady_clock::now();
        dns.set(mode);
        REQUIRE(poll_until([&] { return resolutions(admin, result) >= before + 2; }, 10s));
        // Within hold: the backend stays and takes connections.
        if (std::chrono::steady_clock::now() - failing_since < hold - 200ms) {
            CHECK(has_backends(admin, {name}));
            const Transfer transfer = echo_through(listen, 1024);
            CHECK(transfer.received_hash == transfer.sent_hash);
        }
        CHECK(service_status(admin)["discovery"]["last_resolution"]["result"] == result);
        // After hold: gone, and on_failure ("close") applies.
        REQUIRE(poll_until([&] { return backend_names(admin).empty(); }, hold + 10s));
        CHECK(std::chrono::steady_clock::now() - failing_since >= hold);
        CHECK(connect_to(listen).read_to_eof().empty());
    }
    CHECK(fulcrum.process().output().find("longer than hold: its backends go") !=
          std::string::npos);
}

TEST_CASE("dns-srv: 100 targets, an answer too large for UDP, come over TCP", "[dns]") {
    if (!have_dnsmasq()) return;
    const std::string name = "_many._tcp.svc.test";
    std::string records;
    std::set<std::string> expected;
    for (int i = 0; i < 100; ++i) {
        const std::string target = "target-" + std::to_string(i) + ".svc.test";
        records += srv_record(name, target, static_cast<std::uint16_t>(10000 + i), 10, 1);
        expected.insert(target + ":" + std::to_string(10000 + i));
    }
    Dnsmasq dns(records, 30);
    const std::uint16_t listen = free_port();
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum(discovery_config(listen, admin,
                                     "type = \"dns-srv\"\nname = \"" + name +
                                         "\"\nresolvers = [\"" + dns.resolver() + "\"]\n"),
                    {listen, admin});
    REQUIRE(poll_until([&] { return backend_names(admin) == expected; }, 20s));
    CHECK(scrape(admin).value("fulcrum_discovery_backends", {{"service", "svc"}}) == 100);
}

TEST_CASE("dns-srv: strategies and health checks apply to discovered backends", "[dns]") {
    if (!have_dnsmasq()) return;
    NamedEcho a("a");
    NamedEcho b("b");
    const std::uint16_t closed = free_port();
    const std::string name = "_echo._tcp.svc.test";
    Dnsmasq dns(srv_record(name, "a.svc.test", a.port(), 10, 1) +
                    srv_record(name, "b.svc.test", b.port(), 10, 1) +
                    srv_record(name, "closed.svc.test", closed, 10, 1),
                30);
    const std::uint16_t listen = free_port();
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum(
        discovery_config(
            listen, admin,
            "type = \"dns-srv\"\nname = \"" + name + "\"\nresolvers = [\"" + dns.resolver() +
                "\"]\n",
            "strategy = \"least-connections\"\nretries = 0\n",
            "type = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"50ms\"\nrise = 1\nfall = 1"),
        {listen, admin});
    const std::string closed_name = "closed.svc.test:" + std::to_string(closed);
    REQUIRE(poll_until([&] { return backend_names(admin).size() == 3; }, 10s));
    REQUIRE(poll_until([&] { return backend_named(admin, closed_name)["health"] == "down"; }, 10s));
    // Least connections: a second session goes to the backend the first is not on; the
    // one that is down gets neither.
    auto [first, first_name] = connect_named(listen);
    auto [second, second_name] = connect_named(listen);
    CHECK(std::set<std::string>{first_name, second_name} == std::set<std::string>{"a", "b"});
}

TEST_CASE("dns: 500 re-resolutions leave descriptors and memory where they were", "[dns]") {
    if (!have_dnsmasq()) return;
    NamedEcho a("a");
    const std::string name = "_echo._tcp.svc.test";
    Dnsmasq dns(srv_record(name, "a.svc.test", a.port(), 10, 1) +
                    srv_record(name, "b.svc.test", a.port() == 65535 ? 1 : a.port() + 1, 10, 1),
                0);
    // Ten services resolving every 100 ms: 500 resolutions in a few seconds.
    constexpr int services = 10;
    const std::uint16_t admin = free_port();
    std::string config =
        "[log]\nlevel = \"info\"\naccess_log = false\n[runtime]\nworkers = 1\n"
        "[admin]\nlisten = \"127.0.0.1:" +
        std::to_string(admin) + "\"\n";
    std::vector<std::uint16_t> ports{admin};
    for (int i = 0; i < services; ++i) {
        ports.push_back(free_port());
        config += "[[service]]\nname = \"s" + std::to_string(i) +
                  "\"\nlisten = \"127.0.0.1:" + std::to_string(ports.back()) +
                  "\"\n[service.health]\nenabled = false\n"
                  "[service.discovery]\ntype = \"dns-srv\"\nname = \"" +
                  name + "\"\nresolvers = [\"" + dns.resolver() +
                  "\"]\ninterval = \"100ms\"\nmin_ttl = \"100ms\"\n";
    }
    Fulcrum fulcrum(config, ports);
    auto total = [&] {
        const Exposition metrics = scrape(admin);
        double sum = 0;
        for (int i = 0; i < services; ++i) {
            sum += metrics.value("fulcrum_discovery_resolutions_total",
                                 {{"service", "s" + std::to_string(i)}, {"result", "ok"}});
        }
        return sum;
    };
    REQUIRE(poll_until([&] { return total() >= 50; }, 20s, 50ms));
    const int fds = fulcrum.process().fd_count();
    const long rss = fulcrum.process().rss_kib();
    REQUIRE(poll_until([&] { return total() >= 550; }, 60s, 100ms));
    // A resolution in flight holds a socket per service at most.
    CHECK(fulcrum.process().fd_count() <= fds + services);
#ifdef FULCRUM_TEST_SANITIZED
    // AddressSanitizer keeps freed memory in quarantine (256 MiB by default) and adds
    // shadow memory: RSS says little there, and LeakSanitizer checks the exit instead.
    const long rss_slack_kib = 64 * 1024;
#else
    const long rss_slack_kib = 4 * 1024;
#endif
    CHECK(fulcrum.process().rss_kib() <= rss + rss_slack_kib);
    for (int i = 0; i < services; ++i) {
        CHECK(resolutions(admin, "error", "s" + std::to_string(i)) == 0);
    }
}
