#pragma once
// DNS answers turned into backend configurations, without sockets or c-ares, so the
// mapping is tested on its own: SRV weight and priority become weight and backup, names
// are "target:port" (SRV) and "ip:port" (A/AAAA).

#include <cstdint>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"

namespace fulcrum {

// One SRV record with the address its target resolved to.
struct SrvTarget {
    std::string target;  // the host name; a trailing dot is dropped
    std::uint16_t port = 0;
    std::uint16_t priority = 0;
    std::uint16_t weight = 0;
    std::string ip;  // numeric, "10.0.0.1" or "fd00::1"
};

// The backends of `targets` for `service` (its send_proxy applies), sorted by name: a
// target of the lowest priority value is a primary, the others are backups; weight 0
// counts as 1. A name given twice keeps its lowest priority.
std::vector<BackendConfig> backends_from_srv(std::vector<SrvTarget> targets,
                                             const ServiceConfig& service);

// The backends at `ips` (numeric), each on `port`, weight 1, sorted by name.
std::vector<BackendConfig> backends_from_addresses(const std::vector<std::string>& ips, int port,
                                                   const ServiceConfig& service);

}  // namespace fulcrum
