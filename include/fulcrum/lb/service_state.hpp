#pragma once
// A service as one (re)configuration defines it: its configuration, its pool snapshot
// with the balancer built for it, and its counters (kept across reloads for as long as
// the service exists). Immutable once published: a session holds the one it was accepted
// under, so a reload never changes a live session.

#include <memory>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/backend.hpp"
#include "fulcrum/lb/balancer.hpp"
#include "fulcrum/lb/wait_queue.hpp"
#include "fulcrum/limits/admission.hpp"
#include "fulcrum/stats/discovery_stats.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

struct ServiceState {
    // As configured, with the backends discovery found after the configured ones.
    std::shared_ptr<const ServiceConfig> config;
    std::shared_ptr<const Pool> pool;
    std::shared_ptr<Balancer> balancer;  // built from `pool`, shared by every worker
    std::shared_ptr<ServiceCounters> counters;
    // Kept, like the counters, for as long as the service exists: the connections waiting
    // for a backend slot survive a reload.
    std::shared_ptr<WaitQueue> queue;
    std::shared_ptr<Admission> admission;  // built from config->limits, state carried over
    std::shared_ptr<const DiscoveryStats> discovery;  // with [service.discovery] only
};

}  // namespace fulcrum
