#pragma once
// The process's descriptor limit against what the configuration may use at once. Debian's
// default soft limit (1024) holds about 500 proxied connections, a fraction of the default
// max_connections: fulcrum raises the soft limit as far as the hard limit allows, and says
// once, with the numbers, when that is not enough.

#include <cstdint>

#include "fulcrum/config/config.hpp"

namespace fulcrum {

// Two descriptors per connection (client and backend), two per splice pipe, one listening
// socket per service and worker, and a margin for the admin endpoint, probes and logs.
std::uint64_t descriptors_needed(const Config& config, unsigned workers);

// Raises RLIMIT_NOFILE's soft limit to `needed` (not above the hard limit, never lower
// than it is). Logs the change at info, or a warning naming both numbers when the hard
// limit is lower than `needed`.
void ensure_descriptor_limit(std::uint64_t needed);

}  // namespace fulcrum
