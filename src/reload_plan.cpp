#include "fulcrum/reload_plan.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace fulcrum {

namespace {

const ServiceConfig* find_service(const Config& config, const std::string& name) {
    for (const ServiceConfig& service : config.services) {
        if (service.name == name) return &service;
    }
    return nullptr;
}

const BackendConfig* find_backend(const ServiceConfig& service, const std::string& name) {
    for (const BackendConfig& backend : service.backends) {
        if (backend.name == name) return &backend;
    }
    return nullptr;
}

bool serves(const Config& config, const std::string& key) {
    return std::any_of(config.services.begin(), config.services.end(),
                       [&](const ServiceConfig& s) { return listener_key(s) == key; });
}

// What a reload changes in one service's backends, e.g. "+b2 -b0 ~b1".
std::string backend_changes(const ServiceConfig& before, const ServiceConfig& after) {
    std::vector<std::string> changes;
    for (const BackendConfig& b : after.backends) {
        const BackendConfig* old = find_backend(before, b.name);
        if (old == nullptr) {
            changes.push_back("+" + b.name);
        } else if (!(*old == b)) {
            changes.push_back("~" + b.name);
        }
    }
    for (const BackendConfig& b : before.backends) {
        if (find_backend(after, b.name) == nullptr) changes.push_back("-" + b.name);
    }
    return fmt::format("{}", fmt::join(changes, " "));
}

}  // namespace

std::string listener_key(const ServiceConfig& service) {
    const std::string address = service.listen.numeric();
    return service.listen.port() == 0 ? address + " " + service.name : address;
}

ReloadPlan plan_reload(const Config& before, const Config& after) {
    ReloadPlan plan;
    std::vector<std::string> summary;
    for (const ServiceConfig& service : after.services) {
        const std::string key = listener_key(service);
        if (!serves(before, key) && std::ranges::find(plan.bind, key) == plan.bind.end()) {
            plan.bind.push_back(key);
        }
        const ServiceConfig* old = find_service(before, service.name);
        if (old == nullptr) {
            summary.push_back(fmt::format("service {} added", service.name));
        } else if (listener_key(*old) != key) {
            summary.push_back(
                fmt::format("service {} moved to {}", service.name, service.listen.text));
        } else if (!(*old == service)) {
            plan.changed.push_back(service.name);
            const std::string backends = backend_changes(*old, service);
            summary.push_back(fmt::format("service {} changed{}{}", service.name,
                                          backends.empty() ? "" : ": backends ", backends));
        }
    }
    for (const ServiceConfig& service : before.services) {
        const std::string key = listener_key(service);
        if (!serves(after, key) && std::ranges::find(plan.retire, key) == plan.retire.end()) {
            plan.retire.push_back(key);
        }
        if (find_service(after, service.name) == nullptr) {
            summary.push_back(fmt::format("service {} removed", service.name));
        }
    }
    if (!before.services.empty()) {
        if (after.runtime.workers != before.runtime.workers) {
            plan.need_restart.push_back("runtime.workers");
        }
        if (after.admin.listen != before.admin.listen) plan.need_restart.push_back("admin.listen");
        // The logger is built once, before the workers log through it.
        if (after.log.format != before.log.format) plan.need_restart.push_back("log.format");
        if (after.log.target != before.log.target) plan.need_restart.push_back("log.target");
    }
    plan.summary = summary.empty() ? "no changes" : fmt::format("{}", fmt::join(summary, "; "));
    return plan;
}

}  // namespace fulcrum
