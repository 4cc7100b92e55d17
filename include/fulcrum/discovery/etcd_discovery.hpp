#pragma once
// A service's backends from etcd ([service.discovery] type "etcd"): a thread of its own
// reads the prefix, then watches it from the next revision (blocking HTTP, never on a
// loop) and hands what it sees to the main loop through a uv_async_t, where the set is
// updated and replaced. When etcd is lost the last known set stays; the thread
// reconnects with backoff across the endpoints, resumes the watch from the last revision
// it saw, and reads the prefix anew when that revision was compacted.

#include "fulcrum/discovery/discovery_watch.hpp"

namespace fulcrum {

// Starts the thread at once; starting while etcd is unreachable is fine (it retries).
// Throws std::runtime_error when a handle cannot be initialised.
DiscoveryWatch::Ptr open_etcd_watch(DiscoveryWatch::Setup setup);

}  // namespace fulcrum
