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

bool same_listener(const ServiceConfig& a, const ServiceConfig& b) {
    return a.listen.text == b.listen.text && a.listen.numeric() == b.listen.numeric();
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

ReloadPlan plan_reload(const Config& before, const Config& after) {
    ReloadPlan plan;
    std::vector<std::string> summary;
    for (const ServiceConfig& service : after.services) {
        const ServiceConfig* old = find_service(before, service.name);
        if (old != nullptr && same_listener(*old, service)) {
            if (!(*old == service)) {
                plan.changed.push_back(service.name);
                const std::string backends = backend_changes(*old, service);
                summary.push_back(fmt::format("service {} changed{}{}", service.name,
                                              backends.empty() ? "" : ": backends ", backends));
            }
            continue;
        }
        // Our own listener on the same address (a service renamed or moved onto it) keeps
        // serving until the new one is up: SO_REUSEPORT lets the two overlap.
        const bool ours = std::any_of(
            before.services.begin(), before.services.end(),
            [&](const ServiceConfig& s) { return s.listen.numeric() == service.listen.numeric(); });
        plan.bind.push_back({service.name, !ours});
        if (old != nullptr) {
            plan.retire.push_back(service.name);
            summary.push_back(
                fmt::format("service {} moved to {}", service.name, service.listen.text));
        } else {
            summary.push_back(fmt::format("service {} added", service.name));
        }
    }
    for (const ServiceConfig& service : before.services) {
        if (find_service(after, service.name) == nullptr) {
            plan.retire.push_back(service.name);
            summary.push_back(fmt::format("service {} removed", service.name));
        }
    }
    if (!before.services.empty()) {
        if (after.runtime.workers != before.runtime.workers) {
            plan.need_restart.push_back("runtime.workers");
        }
        if (after.admin.listen != before.admin.listen) plan.need_restart.push_back("admin.listen");
    }
    plan.summary = summary.empty() ? "no changes" : fmt::format("{}", fmt::join(summary, "; "));
    return plan;
}

}  // namespace fulcrum
