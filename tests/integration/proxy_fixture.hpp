#pragma once
// Building blocks for tests that run fulcrum in front of test peers: a configuration
// from a few service descriptions, and clients that check what comes back.

#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"
#include "net.hpp"

namespace fulcrum::test {

struct ServiceSpec {
    std::string name;
    std::uint16_t listen;
    std::vector<std::uint16_t> backends;  // named b0, b1, ... in order
    std::string settings;                 // extra lines for the [[service]] table
    std::string health = "enabled = false";  // lines for [service.health]
    std::string passive;                  // lines for [service.passive], if any
};

// A service on a free port of 127.0.0.1, health checks off.
ServiceSpec service_to(std::vector<std::uint16_t> backends, std::string settings = "",
                       std::string name = "svc");

// One worker (so round-robin order is deterministic), debug logging with the access log,
// and the given services.
std::string config_for(const std::vector<ServiceSpec>& services, const std::string& runtime = "");

Fulcrum start_fulcrum(const std::vector<ServiceSpec>& services, const std::string& runtime = "",
                      std::optional<rlim_t> max_files = std::nullopt);

struct Transfer {
    std::string sent_hash;
    std::string received_hash;
    std::size_t received = 0;
};

// Sends `size` bytes and reads the echo at the same time, hashing both streams.
Transfer echo_through(std::uint16_t port, std::size_t size);

// Sends GET `path` and returns the body of the response (Content-Length framing).
std::string http_get(const Socket& socket, const std::string& path);

}  // namespace fulcrum::test
