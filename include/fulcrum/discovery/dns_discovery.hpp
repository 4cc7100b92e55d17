#pragma once
// The backends of services with [service.discovery], kept up to date on the main loop:
// one watch per service re-resolves its name when the TTL or interval says so, keeps
// the last good answer through resolver errors for `hold`, and tells its owner when the
// set changed, so the owner publishes new pools (the same update a reload makes).

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/stats/discovery_stats.hpp"

namespace fulcrum {

class DnsDiscovery {
public:
    // `on_change(service)` runs on the loop when a service's set of backends changed.
    DnsDiscovery(uv_loop_t* loop, std::function<void(const std::string&)> on_change);
    ~DnsDiscovery();
    DnsDiscovery(const DnsDiscovery&) = delete;
    DnsDiscovery& operator=(const DnsDiscovery&) = delete;

    // Watches the services of `services` that have discovery: a watch whose service and
    // discovery settings are unchanged goes on; a changed one re-resolves at once and
    // keeps the backends it had until then; the others stop. Throws std::runtime_error
    // when a resolver cannot start.
    void configure(const std::vector<ServiceConfig>& services);
    // Stops every watch (their handles close on the loop).
    void stop();

    // The backends found for `service` now; empty without discovery.
    const std::vector<BackendConfig>& backends(const std::string& service) const;
    // Its counters, kept while the service has discovery; nullptr without.
    std::shared_ptr<const DiscoveryStats> stats(const std::string& service) const;

private:
    struct Watch;
    struct Closer {
        void operator()(Watch* watch) const;
    };

    uv_loop_t* loop_;
    std::function<void(const std::string&)> on_change_;
    std::map<std::string, std::unique_ptr<Watch, Closer>> watches_;  // by service name
};

}  // namespace fulcrum
