// The data path through the real binary: bytes both ways, backpressure, half-close,
// resets, retries, on_failure, timeouts and limits.

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// A port nothing listens on: connects to it are refused.
std::uint16_t dead_port() {
    return free_port();
}

// Whether an echo through fulcrum works again within 10 s (connections that fulcrum
// closes at once, while it is still at a limit, are retried).
bool serves_again(std::uint16_t port) {
    return poll_until(
        [port] {
            Socket again = connect_to(port);
            again.send_all("z");
            try {
                return again.read_exact(1) == "z";
            } catch (const std::exception&) {
                return false;
            }
        },
        10s);
}

}  // namespace

TEST_CASE("bytes pass both ways unchanged while the echo streams back", "[datapath]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service});
    for (std::size_t size : {std::size_t{1}, 64 * KiB, 256 * MiB}) {
        INFO("size " << size);
        Transfer t = echo_through(service.listen, size);
        CHECK(t.received == size);
        CHECK(t.received_hash == t.sent_hash);
    }
    CHECK(fulcrum.process().wait_for_output("end=client-fin", 5s));
}

TEST_CASE("HTTP: new connections alternate, keep-alive stays on one backend", "[datapath]") {
    DemoBackend alpha("alpha");
    DemoBackend beta("beta");
    ServiceSpec service = service_to({alpha.port(), beta.port()});
    // One worker: each worker keeps its own round-robin turn, and the kernel spreads new
    // connections over the workers, so only one worker gives a fixed order.
    Fulcrum fulcrum = start_fulcrum({service}, "workers = 1");

    std::vector<std::string> names;
    for (int i = 0; i < 4; ++i) names.push_back(http_get(connect_to(service.listen), "/"));
    CHECK(names[0] == "alpha\n");
    CHECK(names[1] == "beta\n");
    CHECK(names[2] == "alpha\n");
    CHECK(names[3] == "beta\n");

    Socket keep_alive = connect_to(service.listen);
    std::string first = http_get(keep_alive, "/");
    for (int i = 0; i < 5; ++i) CHECK(http_get(keep_alive, "/") == first);
    CHECK(http_get(keep_alive, "/bytes/100000").size() == 100000);
}

TEST_CASE("half-close: the client's FIN reaches the backend, the reply still arrives",
          "[datapath]") {
    const std::string reply = pattern(2 * MiB, 3);
    ScriptedServer backend([&](Socket s) {
        std::string request = s.read_to_eof();  // returns only once the FIN has arrived
        s.send_all(sha256_hex(request));
        s.send_all(reply);
    });
    ServiceSpec service = service_to({backend.port()});
    Fulcrum fulcrum = start_fulcrum({service});

    Socket client = connect_to(service.listen);
    const std::string request = pattern(1 * MiB, 4);
    client.send_all(request);
    client.shutdown_write();
    CHECK(client.read_to_eof() == sha256_hex(request) + reply);
    CHECK(fulcrum.process().wait_for_output("end=client-fin", 5s));
}

TEST_CASE("half-close: the backend's FIN reaches the client, the client's data still arrives",
          "[datapath]") {
    const std::string greeting = pattern(1 * MiB, 5);
    std::promise<std::string> backend_got;
    ScriptedServer backend([&](Socket s) {
        s.send_all(greeting);
        s.shutdown_write();
        backend_got.set_value(s.read_to_eof());
    });
    ServiceSpec service = service_to({backend.port()});
    Fulcrum fulcrum = start_fulcrum({service});

    Socket client = connect_to(service.listen);
    CHECK(client.read_to_eof() == greeting);  // EOF passed on while our side stays open
    const std::string late = pattern(512 * KiB, 6);
    client.send_all(late);
    client.shutdown_write();
    auto got = backend_got.get_future();
    REQUIRE(got.wait_for(10s) == std::future_status::ready);
    CHECK(got.get() == late);
    CHECK(client.read_to_eof().empty());
    CHECK(fulcrum.process().wait_for_output("end=backend-fin", 5s));
}

TEST_CASE("a reset is passed on as a reset, both ways", "[datapath]") {
    SECTION("backend resets") {
        ScriptedServer backend([](Socket s) {
            s.read_exact(5);
            s.reset();
        });
        ServiceSpec service = service_to({backend.port()});
        Fulcrum fulcrum = start_fulcrum({service});
        Socket client = connect_to(service.listen);
        client.send_all("hello");
        CHECK(client.read_until_closed() == ECONNRESET);
        CHECK(fulcrum.process().wait_for_output("end=backend-reset", 5s));
    }
    SECTION("client resets") {
        std::promise<int> backend_error;
        ScriptedServer backend([&](Socket s) {
            s.read_exact(5);
            s.send_all("ready");
            backend_error.set_value(s.read_until_closed());
        });
        ServiceSpec service = service_to({backend.port()});
        Fulcrum fulcrum = start_fulcrum({service});
        Socket client = connect_to(service.listen);
        client.send_all("hello");
        CHECK(client.read_exact(5) == "ready");
        client.reset();
        auto error = backend_error.get_future();
        REQUIRE(error.wait_for(10s) == std::future_status::ready);
        CHECK(error.get() == ECONNRESET);
        CHECK(fulcrum.process().wait_for_output("end=client-reset", 5s));
    }
}

TEST_CASE("a slow reader holds fulcrum's memory to a bounded amount", "[datapath]") {
    std::atomic<bool> stop{false};
    ScriptedServer backend([&](Socket s) {
        for (std::size_t i = 0; i < 256 && !stop; ++i) s.send_all(pattern(MiB, i));
    });
    ServiceSpec service = service_to({backend.port()});
    Fulcrum fulcrum = start_fulcrum({service});
    const long idle_rss = fulcrum.process().rss_kib();

    Socket client = connect_to(service.listen);
    Sha256 received;
    std::size_t total = 0;
    long peak_rss = 0;
    // About 1 MiB/s for 3 s: 64 KiB every 62 ms.
    for (int tick = 0; tick < 48; ++tick) {
        std::string chunk = client.read_exact(64 * KiB);
        received.update(chunk.data(), chunk.size());
        total += chunk.size();
        peak_rss = std::max(peak_rss, fulcrum.process().rss_kib());
        std::this_thread::sleep_for(62ms);  // pacing the reader, not waiting for an event
    }
    stop = true;
    CHECK(peak_rss <= idle_rss + 2048);
    Sha256 expected;
    for (std::size_t i = 0; i * MiB < total; ++i) {
        std::string chunk = pattern(MiB, i);
        expected.update(chunk.data(), std::min(MiB, total - i * MiB));
    }
    CHECK(received.hex() == expected.hex());
    client.reset();
}

TEST_CASE("a refused backend is skipped for the next one", "[datapath]") {
    EchoServer echo;
    ServiceSpec service = service_to({dead_port(), echo.port()}, "retries = 1");
    Fulcrum fulcrum = start_fulcrum({service});
    for (int i = 0; i < 3; ++i) {
        Transfer t = echo_through(service.listen, 64 * KiB);
        CHECK(t.received_hash == t.sent_hash);
    }
    CHECK(echo.accepted() == 3);
    CHECK(fulcrum.process().wait_for_output("connect to b0 failed: ECONNREFUSED", 5s));
}

TEST_CASE("with every backend refused, on_failure does what it says", "[datapath]") {
    ServiceSpec close_service =
        service_to({dead_port(), dead_port()}, "on_failure = \"close\"", "fin");
    ServiceSpec reset_service =
        service_to({dead_port(), dead_port()}, "on_failure = \"reset\"", "rst");
    ServiceSpec http_service =
        service_to({dead_port(), dead_port()}, "on_failure = \"http-502\"", "http");
    Fulcrum fulcrum = start_fulcrum({close_service, reset_service, http_service});

    Socket fin = connect_to(close_service.listen);
    CHECK(fin.read_until_closed() == 0);

    Socket rst = connect_to(reset_service.listen);
    CHECK(rst.read_until_closed() == ECONNRESET);

    Socket http = connect_to(http_service.listen);
    http.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string response = http.read_to_eof();
    CHECK(response.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);

    CHECK(fulcrum.process().wait_for_output("service http: client 127.0.0.1:", 5s));
    const std::string log = fulcrum.process().output();
    CHECK(log.find("no backend available, tried: b0 (ECONNREFUSED), b1 (ECONNREFUSED)") !=
          std::string::npos);
    CHECK(log.find("on_failure=reset") != std::string::npos);
    CHECK(log.find("end=connect-failed") != std::string::npos);
}

TEST_CASE("a backend killed mid-transfer ends only its own session", "[datapath]") {
    auto doomed = std::make_unique<DemoBackend>("doomed");
    EchoServer echo;
    ServiceSpec service = service_to({doomed->port(), echo.port()});
    // One worker, so that round-robin sends the first connection to b0 and the second to
    // b1: with more, each worker's first connection would go to its own b0, the doomed one.
    Fulcrum fulcrum = start_fulcrum({service}, "workers = 1");

    Socket download = connect_to(service.listen);  // round-robin: the first goes to b0
    download.send_all("GET /bytes/2000000000 HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(download.read_exact(MiB).size() == MiB);
    std::future<Transfer> other =
        std::async(std::launch::async, [&] { return echo_through(service.listen, 64 * MiB); });

    doomed.reset();  // SIGKILL
    std::size_t rest = 0;
    while (true) {
        std::string chunk;
        try {
            chunk = download.read_some();
        } catch (const std::exception&) {
            break;  // a reset is as good an end as a FIN here
        }
        if (chunk.empty()) break;
        rest += chunk.size();
    }
    CHECK(rest + MiB < 2000000000);
    Transfer t = other.get();
    CHECK(t.received == 64 * MiB);
    CHECK(t.received_hash == t.sent_hash);
}

TEST_CASE("connect_timeout fires against a backend that never accepts", "[datapath]") {
    // A listener whose accept queue is full drops further SYNs: connects hang.
    Socket stuck = listen_any(0);
    std::vector<Socket> fillers;
    for (int i = 0; i < 4; ++i) fillers.push_back(start_connect(local_port(stuck)));
    ServiceSpec service =
        service_to({local_port(stuck)}, "connect_timeout = \"300ms\"\nretries = 0");
    Fulcrum fulcrum = start_fulcrum({service});
    const auto begin = std::chrono::steady_clock::now();
    Socket client = connect_to(service.listen);
    CHECK(client.read_until_closed() == 0);
    CHECK(std::chrono::steady_clock::now() - begin < 10s);  // a bound, not a speed claim
    CHECK(fulcrum.process().wait_for_output("end=connect-failed", 5s));
    CHECK(fulcrum.process().output().find("b0 (timeout)") != std::string::npos);
}

TEST_CASE("idle_timeout closes a silent session but not a busy one", "[datapath]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()}, "idle_timeout = \"400ms\"");
    Fulcrum fulcrum = start_fulcrum({service});

    Socket busy = connect_to(service.listen);
    for (int i = 0; i < 10; ++i) {  // 1.5 s of traffic, never 400 ms apart
        busy.send_all("ping");
        CHECK(busy.read_exact(4) == "ping");
        std::this_thread::sleep_for(150ms);
    }
    Socket silent = connect_to(service.listen);
    CHECK(silent.read_until_closed() == 0);
    CHECK(busy.read_until_closed() == 0);
    CHECK(fulcrum.process().wait_for_output("end=idle-timeout", 5s));
}

TEST_CASE("2,000 concurrent connections each echo 64 KiB intact", "[datapath]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service}, "max_connections = 5000");
    CHECK(run_echo_clients(service.listen, 2000, 64 * KiB, 120) == 2000);
}

TEST_CASE("max_connections refuses the connection past the limit", "[datapath]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service}, "max_connections = 3");
    std::vector<Socket> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(connect_to(service.listen));
        held.back().send_all("x");
        CHECK(held.back().read_exact(1) == "x");
    }
    Socket refused = connect_to(service.listen);
    CHECK(refused.read_until_closed() == 0);
    CHECK(fulcrum.process().wait_for_output("end=refused", 5s));

    held.pop_back();  // one slot frees up once fulcrum sees the close
    CHECK(serves_again(service.listen));
}

TEST_CASE("out of descriptors: no spinning, and service comes back", "[datapath]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    Fulcrum fulcrum = start_fulcrum({service}, "", rlim_t{48});

    std::vector<Socket> held;
    for (int i = 0; i < 60; ++i) {
        int error = 0;
        Socket s = try_connect(service.listen, error);
        if (s) held.push_back(std::move(s));
    }
    CHECK(fulcrum.process().wait_for_output("out of descriptors (EMFILE)", 10s));
    const double cpu_before = fulcrum.process().cpu_seconds();
    for (int i = 0; i < 100; ++i) {  // keep knocking while saturated
        int error = 0;
        Socket s = try_connect(service.listen, error);
        std::this_thread::sleep_for(10ms);
    }
    CHECK(fulcrum.process().cpu_seconds() - cpu_before < 0.5);
    // Paused and resumed every 100 ms for a second, but logged once per episode (per
    // worker's listener).
    CHECK(count_of(fulcrum.process().output(), "out of descriptors (EMFILE)") <=
          static_cast<std::size_t>(default_workers()));

    held.clear();
    CHECK(serves_again(service.listen));
    CHECK(fulcrum.process().wait_for_output("accepting again, after", 10s));
}
