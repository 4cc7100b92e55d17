#include "fulcrum/discovery/discovery_watch.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace fulcrum {
namespace {

// "added a:1, b:1; removed c:1" for the log: the names new in `after`, gone from
// `before`, and those whose address, weight or drain changed.
std::string set_changes(const std::vector<BackendConfig>& before,
                        const std::vector<BackendConfig>& after) {
    std::vector<std::string> added;
    std::vector<std::string> changed;
    std::vector<std::string> removed;
    for (const BackendConfig& backend : after) {
        const auto old = std::ranges::find(before, backend.name, &BackendConfig::name);
        if (old == before.end()) {
            added.push_back(backend.name);
        } else if (!(*old == backend)) {
            changed.push_back(backend.name);
        }
    }
    for (const BackendConfig& backend : before) {
        if (std::ranges::find(after, backend.name, &BackendConfig::name) == after.end()) {
            removed.push_back(backend.name);
        }
    }
    std::vector<std::string> parts;
    if (!added.empty()) parts.push_back(fmt::format("added {}", fmt::join(added, ", ")));
    if (!changed.empty()) parts.push_back(fmt::format("changed {}", fmt::join(changed, ", ")));
    if (!removed.empty()) parts.push_back(fmt::format("removed {}", fmt::join(removed, ", ")));
    return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace

DiscoveryWatch::DiscoveryWatch(Setup setup) : setup_(std::move(setup)) {
    if (!setup_.stats) setup_.stats = std::make_shared<DiscoveryStats>();
}

std::string DiscoveryWatch::label() const {
    const DiscoveryConfig& d = discovery();
    return fmt::format("service {}: {} {}", setup_.service.name, to_string(d.type),
                       d.type == DiscoveryType::etcd ? d.prefix : d.name);
}

void DiscoveryWatch::replace(std::vector<BackendConfig> found) {
    if (found == setup_.current) return;
    spdlog::info("{}: {}", label(), set_changes(setup_.current, found));
    setup_.current = std::move(found);
    setup_.stats->backends.store(setup_.current.size(), std::memory_order_relaxed);
    setup_.on_change(setup_.service.name);
}

}  // namespace fulcrum
