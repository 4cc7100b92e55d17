#pragma once
// The backends of services with [service.discovery], kept up to date on the main loop:
// one watch per service, from DNS or etcd (discovery_watch.hpp), and the owner told when
// a service's set changed, so it publishes new pools (the same update a reload makes).

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/discovery/discovery_watch.hpp"
#include "fulcrum/stats/discovery_stats.hpp"

namespace fulcrum {

// `service` (as configured) with `discovered` after its own backends; a discovered one
// whose name a configured one has is left out.
ServiceConfig with_discovered_backends(const ServiceConfig& service,
                                       const std::vector<BackendConfig>& discovered);

class Discovery {
public:
    // `on_change(service)` runs on the loop when a service's set of backends changed.
    Discovery(uv_loop_t* loop, std::function<void(const std::string&)> on_change);
    ~Discovery();
    Discovery(const Discovery&) = delete;
    Discovery& operator=(const Discovery&) = delete;

    // Watches the services of `services` that have discovery: a watch whose service and
    // discovery settings are unchanged goes on; a changed one starts again at once and
    // keeps the backends it had until then; the others stop. Throws std::runtime_error
    // when a watch cannot start.
    void configure(const std::vector<ServiceConfig>& services);
    // Stops every watch (their handles close on the loop).
    void stop();

    // The backends found for `service` now; empty without discovery.
    const std::vector<BackendConfig>& backends(const std::string& service) const;
    // Its counters, kept while the service has discovery; nullptr without.
    std::shared_ptr<const DiscoveryStats> stats(const std::string& service) const;

private:
    uv_loop_t* loop_;
    std::function<void(const std::string&)> on_change_;
    std::map<std::string, DiscoveryWatch::Ptr> watches_;  // by service name
};

}  // namespace fulcrum
