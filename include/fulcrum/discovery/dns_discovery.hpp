#pragma once
// A service's backends from DNS ([service.discovery] type "dns-a" or "dns-srv"), on the
// main loop: it re-resolves the name when the TTL or interval says so, keeps the last
// good answer through resolver errors for `hold`, and replaces the set when the answer
// changed.

#include "fulcrum/discovery/discovery_watch.hpp"

namespace fulcrum {

// Starts resolving at once. Throws std::runtime_error when the resolver cannot start.
DiscoveryWatch::Ptr open_dns_watch(DiscoveryWatch::Setup setup);

}  // namespace fulcrum
