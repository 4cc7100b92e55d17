// fulcrum-demo-backend: a small HTTP server to put behind fulcrum in demos and tests.
//
//   GET  /          its name, e.g. "backend-a\n"
//   GET  /health    200 "ok\n", or 503 "failing\n" after POST /health/fail
//   POST /health/fail, POST /health/ok   flip the health answer
//   GET  /bytes/N   N bytes of a fixed pattern: byte i is (i % 251)
//
// The pattern's period is a prime so that a chunk that is lost, repeated or reordered
// anywhere along the way changes the bytes, whatever the buffer sizes in between.

#include <pthread.h>
#include <sys/socket.h>

#include <httplib.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <iostream>
#include <limits>
#include <string>
#include <thread>

namespace {

constexpr std::size_t pattern_period = 251;
constexpr std::size_t chunk_size = 64 * 1024;

// One chunk plus a period, so any chunk can start at any phase of the pattern.
const std::array<char, chunk_size + pattern_period>& pattern_block() {
    static const auto block = [] {
        std::array<char, chunk_size + pattern_period> bytes{};
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            bytes[i] = static_cast<char>(i % pattern_period);
        }
        return bytes;
    }();
    return block;
}

// httplib keeps its listening socket protected; this exposes what the demo needs.
class DemoServer : public httplib::Server {
public:
    // httplib listens with a backlog of 5, which drops SYNs (and costs a 1 s
    // retransmit) as soon as tests open connections in bursts. Linux lets
    // listen() be called again to raise it.
    bool raise_backlog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }
};

// Uses httplib's content-reader form of POST: its plain form answers 400 to a bodiless
// POST without Content-Length (`curl -X POST URL`), and this form leaves reading to us.
httplib::Server::HandlerWithContentReader health_switch(std::atomic<bool>& healthy, bool value) {
    return [&healthy, value](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& read_body) {
        // Drain any body so the next request on a keep-alive connection parses.
        if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
            read_body([](const char*, std::size_t) { return true; });
        }
        healthy.store(value);
        res.set_content(value ? "health: ok\n" : "health: failing\n", "text/plain");
    };
}

void add_routes(DemoServer& server, const std::string& name, std::atomic<bool>& healthy) {
    server.Get("/", [&name](const httplib::Request&, httplib::Response& res) {
        res.set_content(name + "\n", "text/plain");
    });
    server.Get("/health", [&healthy](const httplib::Request&, httplib::Response& res) {
        const bool ok = healthy.load();
        res.status = ok ? 200 : 503;
        res.set_content(ok ? "ok\n" : "failing\n", "text/plain");
    });
    server.Post("/health/fail", health_switch(healthy, false));
    server.Post("/health/ok", health_switch(healthy, true));
    server.Get(R"(/bytes/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
        const std::string digits = req.matches[1].str();
        std::size_t total = 0;
        const auto [end, error] =
            std::from_chars(digits.data(), digits.data() + digits.size(), total);
        if (error != std::errc{} || end != digits.data() + digits.size()) {
            res.status = 400;
            res.set_content("byte count out of range\n", "text/plain");
            return;
        }
        if (total == 0) {
            // httplib treats a zero-length provider as "length unknown" and spins.
            res.set_content("", "application/octet-stream");
            return;
        }
        // Streamed chunk by chunk: a large N never allocates N bytes.
        res.set_content_provider(
            total, "application/octet-stream",
            [](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                const std::size_t count = std::min(length, chunk_size);
                return sink.write(pattern_block().data() + offset % pattern_period, count);
            });
    });
}

std::string host_port(const std::string& host, int port) {
    const bool ipv6 = host.find(':') != std::string::npos;
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"fulcrum demo HTTP backend"};
    int port = 0;
    std::string name = "demo-backend";
    std::string host = "127.0.0.1";
    std::size_t threads = 64;
    app.add_option("--port", port, "TCP port (0 picks a free one)")
        ->required()
        ->check(CLI::Range(0, 65535));
    app.add_option("--name", name, "name answered on GET /")->capture_default_str();
    app.add_option("--host", host, "address to bind")->capture_default_str();
    app.add_option("--threads", threads,
                   "connections served at once (each keep-alive connection holds one)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    CLI11_PARSE(app, argc, argv);

    // Block the stop signals before any thread exists so every thread inherits the
    // mask and only the waiter below receives them (httplib is not signal-safe).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    std::atomic<bool> healthy{true};
    DemoServer server;
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // httplib closes a keep-alive connection after 5 requests by default.
    server.set_keep_alive_max_count(std::numeric_limits<std::size_t>::max());
    // Headers and body leave in separate writes; Nagle would hold the body back.
    server.set_tcp_nodelay(true);
    // SO_REUSEADDR lets a test restart a backend on the same port at once; leaving out
    // httplib's default SO_REUSEPORT makes a second backend on a taken port fail loudly.
    server.set_socket_options([](int fd) {
        const int on = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    });
    add_routes(server, name, healthy);

    const int bound_port =
        port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
    if (bound_port < 0 || !server.raise_backlog()) {
        std::cerr << "fulcrum-demo-backend: cannot listen on " << host_port(host, port) << "\n";
        return 1;
    }
    std::cout << "listening on " << host_port(host, bound_port) << std::endl;

    std::promise<void> server_done;
    std::thread signal_waiter([&server, &stop_signals, done = server_done.get_future()] {
        int signal_number = 0;
        sigwait(&stop_signals, &signal_number);
        // stop() does nothing until the accept loop runs, and the signal may come first.
        while (!server.is_running() &&
               done.wait_for(std::chrono::milliseconds(1)) == std::future_status::timeout) {
        }
        server.stop();
        // After stop(), httplib still waits out each idle keep-alive connection (up to
        // its 5 s keep-alive timeout) although no response is in flight on it.
        if (done.wait_for(std::chrono::seconds(1)) == std::future_status::timeout) {
            std::_Exit(0);
        }
    });
    const bool stopped_cleanly = server.listen_after_bind();
    server_done.set_value();
    if (!stopped_cleanly) {
        // The accept loop failed on its own: wake the waiter so it can be joined.
        pthread_kill(signal_waiter.native_handle(), SIGTERM);
        std::cerr << "fulcrum-demo-backend: accept loop failed\n";
    }
    signal_waiter.join();
    return stopped_cleanly ? 0 : 1;
}
