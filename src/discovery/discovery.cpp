#include "fulcrum/discovery/discovery.hpp"

#include <algorithm>

#include "fulcrum/discovery/dns_discovery.hpp"
#include "fulcrum/discovery/etcd_discovery.hpp"

namespace fulcrum {

ServiceConfig with_discovered_backends(const ServiceConfig& service,
                                       const std::vector<BackendConfig>& discovered) {
    ServiceConfig running = service;
    for (const BackendConfig& backend : discovered) {
        if (std::ranges::find(service.backends, backend.name, &BackendConfig::name) ==
            service.backends.end()) {
            running.backends.push_back(backend);
        }
    }
    return running;
}

Discovery::Discovery(uv_loop_t* loop, std::function<void(const std::string&)> on_change)
    : loop_(loop), on_change_(std::move(on_change)) {}

Discovery::~Discovery() {
    stop();
}

void Discovery::configure(const std::vector<ServiceConfig>& services) {
    std::map<std::string, DiscoveryWatch::Ptr> next;
    for (const ServiceConfig& service : services) {
        if (!service.discovery) continue;
        const auto old = watches_.find(service.name);
        if (old != watches_.end() && old->second->service() == service) {
            next.emplace(service.name, std::move(old->second));
            continue;
        }
        DiscoveryWatch::Setup setup{loop_, service, {}, nullptr, on_change_};
        if (old != watches_.end()) {
            setup.current = old->second->current();
            setup.stats = old->second->stats();
        }
        next.emplace(service.name, service.discovery->type == DiscoveryType::etcd
                                       ? open_etcd_watch(std::move(setup))
                                       : open_dns_watch(std::move(setup)));
    }
    watches_ = std::move(next);  // the watches left behind close
}

void Discovery::stop() {
    watches_.clear();
}

const std::vector<BackendConfig>& Discovery::backends(const std::string& service) const {
    static const std::vector<BackendConfig> none;
    const auto found = watches_.find(service);
    return found != watches_.end() ? found->second->current() : none;
}

std::shared_ptr<const DiscoveryStats> Discovery::stats(const std::string& service) const {
    const auto found = watches_.find(service);
    return found != watches_.end() ? found->second->stats() : nullptr;
}

}  // namespace fulcrum
