#include "fulcrum/discovery/srv_mapping.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace fulcrum {
namespace {

// A discovered backend; its address is numeric, so parsing it asks no resolver.
BackendConfig discovered(std::string name, const std::string& ip, int port,
                         const ServiceConfig& service) {
    BackendConfig backend;
    const std::string endpoint = ip.find(':') != std::string::npos
                                     ? fmt::format("[{}]:{}", ip, port)
                                     : fmt::format("{}:{}", ip, port);
    backend.address = parse_address(endpoint);
    backend.name = std::move(name);
    backend.send_proxy = service.send_proxy;
    backend.source = BackendSource::dns;
    return backend;
}

void sort_by_name(std::vector<BackendConfig>& backends) {
    std::ranges::sort(backends, {}, &BackendConfig::name);
}

}  // namespace

std::vector<BackendConfig> backends_from_srv(std::vector<SrvTarget> targets,
                                             const ServiceConfig& service) {
    std::ranges::sort(targets, {}, &SrvTarget::priority);
    std::vector<BackendConfig> backends;
    std::set<std::string> names;
    for (SrvTarget& target : targets) {
        if (target.target.ends_with('.')) target.target.pop_back();
        std::string name = fmt::format("{}:{}", target.target, target.port);
        if (!names.insert(name).second) continue;
        BackendConfig& backend =
            backends.emplace_back(discovered(std::move(name), target.ip, target.port, service));
        backend.weight = std::max<int>(1, target.weight);
        backend.backup = target.priority != targets.front().priority;
    }
    sort_by_name(backends);
    return backends;
}

std::vector<BackendConfig> backends_from_addresses(const std::vector<std::string>& ips, int port,
                                                   const ServiceConfig& service) {
    std::vector<BackendConfig> backends;
    for (const std::string& ip : ips) {
        BackendConfig backend = discovered({}, ip, port, service);
        backend.name = backend.address.numeric();
        if (std::ranges::find(backends, backend.name, &BackendConfig::name) == backends.end()) {
            backends.push_back(std::move(backend));
        }
    }
    sort_by_name(backends);
    return backends;
}

}  // namespace fulcrum
