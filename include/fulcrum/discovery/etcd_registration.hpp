#pragma once
// `fulcrum register`: a backend without an etcd client of its own joins a prefix that
// fulcrum instances watch. It grants a lease of `ttl`, puts the backend's key with it,
// keeps the lease alive (every third of the TTL) and, on SIGTERM or SIGINT, deletes the
// key and revokes the lease. When it dies without that, the lease expires and etcd
// deletes the key: the backend leaves every instance within the TTL.

#include <optional>
#include <string>
#include <vector>

#include "fulcrum/config/duration.hpp"

namespace fulcrum {

struct Registration {
    std::vector<std::string> endpoints;  // "http://host:port"
    std::string prefix;                  // ends with "/"
    std::string name;                    // the key's last segment
    std::string address;                 // numeric "ip:port"
    Duration ttl = std::chrono::seconds(10);
    std::optional<int> weight;

    // The key and its value, {"address": ..., "weight": ...}.
    std::string key() const { return prefix + name; }
    std::string value() const;
};

// Throws std::invalid_argument saying what is wrong (the value is read back as fulcrum
// reads it, so what registers is what the instances take).
void check_registration(const Registration& registration);

// Registers and keeps the registration until SIGTERM or SIGINT; etcd being unreachable
// meanwhile is retried, an expired lease is granted and put again. Returns the exit code.
int run_registration(const Registration& registration);

}  // namespace fulcrum
