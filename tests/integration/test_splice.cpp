// The zero-copy bulk path (splice) through the real binary: large transfers both ways,
// bytes parked in a pipe behind a slow reader, half-close, resets, more bulk sessions
// than pipes, splice turned off, and an idle session after bulk holding no pipe. The
// admin endpoint's splice metrics tell which path the bytes took.

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <future>
#include <stdexcept>
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

double metric(std::uint16_t admin, const std::string& name) {
    return scrape(admin).value(name);
}

// Waits until `name` reads `value` on the admin endpoint (10 s at most).
bool metric_becomes(std::uint16_t admin, const std::string& name, double value) {
    return poll_until([&] { return metric(admin, name) == value; }, 10s, 20ms);
}

// What `pattern` chunks 0, 1, ... of `chunk` bytes hash to, `total` bytes in all.
std::string pattern_hash(std::size_t total, std::size_t chunk, std::uint64_t first_seed) {
    Sha256 hash;
    for (std::size_t offset = 0, i = 0; offset < total; offset += chunk, ++i) {
        hash.update(pattern(std::min(chunk, total - offset), first_seed + i));
    }
    return hash.hex();
}

// Sends `total` bytes of `pattern` chunks and returns nothing; throws on error.
void send_pattern(const Socket& socket, std::size_t total, std::size_t chunk,
                  std::uint64_t first_seed) {
    for (std::size_t offset = 0, i = 0; offset < total; offset += chunk, ++i) {
        socket.send_all(pattern(std::min(chunk, total - offset), first_seed + i));
    }
}

// Reads to EOF and hashes; the size read goes to `size`.
std::string hash_to_eof(const Socket& socket, std::size_t& size) {
    Sha256 hash;
    size = 0;
    for (std::string chunk; !(chunk = socket.read_some()).empty();) {
        size += chunk.size();
        hash.update(chunk);
    }
    return hash.hex();
}

}  // namespace

TEST_CASE("splice: 256 MiB each way through the splice path, byte-exact", "[splice]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    Transfer t = echo_through(service.listen, 256 * MiB);
    CHECK(t.received == 256 * MiB);
    CHECK(t.received_hash == t.sent_hash);
    REQUIRE(fulcrum.process().wait_for_output("end=client-fin", 5s));

    const Exposition metrics = scrape(admin);
    const LabelSet b0{{"service", "svc"}, {"backend", "b0"}};
    CHECK(metrics.value("fulcrum_backend_bytes_sent_total", b0) == 256 * MiB);
    CHECK(metrics.value("fulcrum_backend_bytes_received_total", b0) == 256 * MiB);
    // Both directions switched, and most of the bytes were spliced.
    CHECK(metrics.value("fulcrum_splice_transfers_total") >= 2);
    CHECK(metrics.value("fulcrum_splice_bytes_total") > 256 * MiB);
    CHECK(metrics.value("fulcrum_splice_pipes_in_use") == 0);
    CHECK(fulcrum.process().output().find("bytes_in=268435456 bytes_out=268435456") !=
          std::string::npos);
}

TEST_CASE("splice: a slow reader leaves bytes parked in the pipe, still byte-exact", "[splice]") {
    constexpr std::size_t total = 64 * MiB;
    ScriptedServer backend([&](Socket s) {
        send_pattern(s, total, MiB, 100);
        s.shutdown_write();
        s.read_until_closed();
    });
    ServiceSpec service = service_to({backend.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    Socket client = connect_to(service.listen);
    Sha256 hash;
    std::string first = client.read_exact(MiB);
    hash.update(first);
    // A slow reader keeps the sink full nearly all the time, so the backend's bytes wait
    // in a pipe. (A direction that has just left splice after a small wakeup may stall on
    // the copy path instead, with one write block; the next write the reader lets through
    // takes it back to splice.)
    std::size_t received = first.size();
    bool parked = false;
    for (const auto deadline = std::chrono::steady_clock::now() + 10s;
         !parked && std::chrono::steady_clock::now() < deadline;) {
        std::string chunk = client.read_some(16 * KiB);
        REQUIRE_FALSE(chunk.empty());
        received += chunk.size();
        hash.update(chunk);
        parked = metric(admin, "fulcrum_splice_pipes_in_use") == 1;
        std::this_thread::sleep_for(5ms);  // pacing the reader, not waiting for a result
    }
    CHECK(parked);
    // At least once: a wakeup that moved little (a slow machine, a sanitizer) returns the
    // direction to copying until its next full read, which splices again.
    CHECK(metric(admin, "fulcrum_splice_transfers_total") >= 1);
    // Then all of it, as fast as it comes.
    for (std::string chunk; !(chunk = client.read_some()).empty();) {
        received += chunk.size();
        hash.update(chunk);
    }
    CHECK(received == total);
    CHECK(hash.hex() == pattern_hash(total, MiB, 100));
    client.shutdown_write();
    CHECK(fulcrum.process().wait_for_output("end=backend-fin", 5s));
    CHECK(metric(admin, "fulcrum_splice_pipes_in_use") == 0);
}

TEST_CASE("splice: half-close, the client's FIN passes while the download goes on", "[splice]") {
    constexpr std::size_t upload = 32 * MiB;
    constexpr std::size_t download = 96 * MiB;
    std::promise<std::string> backend_got;
    ScriptedServer backend([&](Socket s) {
        std::thread sender([&] { send_pattern(s, download, MiB, 300); });
        std::size_t size = 0;
        std::string hash = hash_to_eof(s, size);  // returns once the FIN has arrived
        sender.join();
        s.shutdown_write();
        backend_got.set_value(size == upload ? hash : "wrong size " + std::to_string(size));
    });
    ServiceSpec service = service_to({backend.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    Socket client = connect_to(service.listen, 60);
    std::thread uploader([&] {
        send_pattern(client, upload, MiB, 200);
        client.shutdown_write();
    });
    std::size_t size = 0;
    const std::string downloaded = hash_to_eof(client, size);
    uploader.join();
    CHECK(size == download);
    CHECK(downloaded == pattern_hash(download, MiB, 300));
    auto got = backend_got.get_future();
    REQUIRE(got.wait_for(20s) == std::future_status::ready);
    CHECK(got.get() == pattern_hash(upload, MiB, 200));
    CHECK(fulcrum.process().wait_for_output("end=client-fin", 5s));
    CHECK(metric(admin, "fulcrum_splice_transfers_total") >= 2);
}

TEST_CASE("splice: a reset mid-bulk is passed on as a reset", "[splice]") {
    SECTION("backend resets") {
        ScriptedServer backend([](Socket s) {
            send_pattern(s, 32 * MiB, MiB, 400);
            s.reset();
        });
        ServiceSpec service = service_to({backend.port()});
        const std::uint16_t admin = free_port();
        Fulcrum fulcrum = start_with_admin({service}, admin);
        Socket client = connect_to(service.listen);
        // Reading slowly: the reset comes while bytes are in flight through the pipe.
        client.read_exact(8 * MiB);
        std::this_thread::sleep_for(200ms);
        CHECK(client.read_until_closed() == ECONNRESET);
        CHECK(fulcrum.process().wait_for_output("end=backend-reset", 5s));
        CHECK(metric(admin, "fulcrum_splice_transfers_total") >= 1);
        CHECK(metric_becomes(admin, "fulcrum_splice_pipes_in_use", 0));
    }
    SECTION("client resets") {
        std::promise<int> backend_error;
        ScriptedServer backend([&](Socket s) { backend_error.set_value(s.read_until_closed()); });
        ServiceSpec service = service_to({backend.port()});
        const std::uint16_t admin = free_port();
        Fulcrum fulcrum = start_with_admin({service}, admin);
        Socket client = connect_to(service.listen);
        send_pattern(client, 16 * MiB, MiB, 500);
        CHECK(poll_until([&] { return metric(admin, "fulcrum_splice_transfers_total") >= 1; }, 10s,
                         20ms));
        client.reset();
        auto error = backend_error.get_future();
        REQUIRE(error.wait_for(10s) == std::future_status::ready);
        CHECK(error.get() == ECONNRESET);
        CHECK(fulcrum.process().wait_for_output("end=client-reset", 5s));
    }
}

TEST_CASE("splice: more bulk sessions than pipes fall back to copying, still exact", "[splice]") {
    constexpr int sessions = 6;
    constexpr std::size_t total = 24 * MiB;
    ScriptedServer backend([&](Socket s) {
        const std::string seed = s.read_exact(1);
        send_pattern(s, total, MiB, 1000 * static_cast<std::uint64_t>(seed[0]));
        s.shutdown_write();
        s.read_until_closed();
    });
    ServiceSpec service = service_to({backend.port()});
    const std::uint16_t admin = free_port();
    // One worker: with more, its share of the pipes is 1 each, and the kernel may give one
    // worker all six sessions.
    Fulcrum fulcrum = start_with_admin({service}, admin, "workers = 1\nsplice_pipes = 2");

    std::vector<Socket> clients;
    for (int i = 0; i < sessions; ++i) {
        clients.push_back(connect_to(service.listen, 60));
        clients.back().send_all(std::string(1, static_cast<char>('a' + i)));
    }
    // Nobody reads yet: every session stalls, two of them with bytes in the two pipes.
    CHECK(metric_becomes(admin, "fulcrum_splice_pipes_in_use", 2));
    CHECK(poll_until([&] { return metric(admin, "fulcrum_splice_pool_exhausted_total") > 0; }, 10s,
                     20ms));
    std::vector<std::future<std::string>> hashes;
    for (const Socket& client : clients) {
        hashes.push_back(std::async(std::launch::async, [&client] {
            std::size_t size = 0;
            std::string hash = hash_to_eof(client, size);
            return size == total ? hash : "wrong size " + std::to_string(size);
        }));
    }
    for (int i = 0; i < sessions; ++i) {
        INFO("session " << i);
        CHECK(hashes[static_cast<std::size_t>(i)].get() ==
              pattern_hash(total, MiB, 1000 * static_cast<std::uint64_t>('a' + i)));
    }
    CHECK(metric(admin, "fulcrum_splice_bytes_total") > 0);
    CHECK(metric(admin, "fulcrum_splice_pipes_in_use") == 0);
    CHECK(metric(admin, "fulcrum_splice_pipes_idle") <= 2);
}

TEST_CASE("splice: splice_pipes = 0 copies every byte, the same bytes", "[splice]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin, "splice_pipes = 0");

    Transfer t = echo_through(service.listen, 64 * MiB);
    CHECK(t.received == 64 * MiB);
    CHECK(t.received_hash == t.sent_hash);
    REQUIRE(fulcrum.process().wait_for_output("end=client-fin", 5s));
    const Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_splice_bytes_total") == 0);
    CHECK(metrics.value("fulcrum_splice_transfers_total") == 0);
    CHECK(metrics.value("fulcrum_splice_pipes_idle") == 0);
    CHECK(metrics.value("fulcrum_backend_bytes_sent_total",
                        {{"service", "svc"}, {"backend", "b0"}}) == 64 * MiB);
}

TEST_CASE("splice: a session idle after bulk holds no pipe and still works", "[splice]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port()});
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    Socket client = connect_to(service.listen, 60);
    const std::size_t size = 32 * MiB;
    std::future<void> sent =
        std::async(std::launch::async, [&] { send_pattern(client, size, MiB, 600); });
    Sha256 hash;
    std::size_t received = 0;
    while (received < size) {
        std::string chunk = client.read_some();
        REQUIRE_FALSE(chunk.empty());
        received += chunk.size();
        hash.update(chunk);
    }
    sent.get();
    CHECK(hash.hex() == pattern_hash(size, MiB, 600));
    CHECK(metric(admin, "fulcrum_splice_transfers_total") >= 1);

    // Open and idle: no pipe held.
    CHECK(metric_becomes(admin, "fulcrum_splice_pipes_in_use", 0));
    CHECK(metric(admin, "fulcrum_client_connections") == 1);
    // Small traffic afterwards still flows, and takes no pipe either.
    client.send_all("ping");
    CHECK(client.read_exact(4) == "ping");
    CHECK(metric(admin, "fulcrum_splice_pipes_in_use") == 0);
    client.shutdown_write();
    CHECK(client.read_to_eof().empty());
    CHECK(fulcrum.process().wait_for_output("end=client-fin", 5s));
}
