#pragma once
// Building blocks for tests that run fulcrum in front of test peers: a configuration
// from a few service descriptions, and clients that check what comes back.

#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "net.hpp"

namespace fulcrum::test {

struct ServiceSpec {
    std::string name;
    std::uint16_t listen;
    std::vector<std::uint16_t> backends;     // named b0, b1, ... in order
    std::string settings;                    // extra lines for the [[service]] table
    std::string health = "enabled = false";  // lines for [service.health]
    std::string passive;                     // lines for [service.passive], if any
    std::string listen_host = "127.0.0.1";
    std::string backend_host = "127.0.0.1";  // of every backend
};

// A service on a free port of 127.0.0.1, health checks off.
ServiceSpec service_to(std::vector<std::uint16_t> backends, std::string settings = "",
                       std::string name = "svc");

// The number of workers a test gets unless it sets its own: FULCRUM_TEST_WORKERS from
// the environment (a positive number, read once), or 1. Throws if the value is invalid.
// A test that depends on one worker (exact round-robin order, one worker's table) sets
// "workers = 1" in its runtime lines and says why.
int default_workers();

// Debug logging with the access log, the given services, and default_workers() workers
// unless `runtime` sets workers.
std::string config_for(const std::vector<ServiceSpec>& services, const std::string& runtime = "");

// `config` with an [admin] table listening on 127.0.0.1:port, plus `lines` in it.
std::string with_admin(const std::string& config, std::uint16_t port,
                       const std::string& lines = "");

Fulcrum start_fulcrum(const std::vector<ServiceSpec>& services, const std::string& runtime = "",
                      std::optional<rlim_t> max_files = std::nullopt);

struct Transfer {
    std::string sent_hash;
    std::string received_hash;
    std::size_t received = 0;
};

// Sends `size` bytes and reads the echo at the same time, hashing both streams; then
// half-closes and reads to EOF.
Transfer echo_over(const Socket& socket, std::size_t size);
// The same over a new connection to `port`.
Transfer echo_through(std::uint16_t port, std::size_t size);

// A backend that greets each connection with its name and a newline, then echoes.
class NamedEcho {
public:
    explicit NamedEcho(std::string name);
    std::uint16_t port() const { return server_.port(); }

private:
    ScriptedServer server_;
};

// Connects through fulcrum and returns the connection with the name of its backend.
std::pair<Socket, std::string> connect_named(std::uint16_t port);

// A session through fulcrum to an echo backend, known to be established (one byte echoed).
Socket established_session(std::uint16_t port);

// Flips a demo backend's health answer (POST /health/fail or /health/ok).
void set_health(const DemoBackend& backend, bool healthy);

// Rewrites the file and sends SIGHUP; returns once fulcrum has logged the outcome (the
// `reloads`-th "reloaded" or "reload rejected" line), and throws if it does not in 10 s.
void reload(Fulcrum& fulcrum, const std::string& config, std::size_t reloads);

// How many times `needle` occurs in `text`.
std::size_t count_of(const std::string& text, const std::string& needle);

// Sends GET `path` and returns the body of the response (Content-Length framing).
std::string http_get(const Socket& socket, const std::string& path);

}  // namespace fulcrum::test
