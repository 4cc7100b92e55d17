#pragma once
// What every source of discovered backends (DNS, etcd) shares: one watch per service
// holds the set in use, and when a source finds another set it logs what changed, counts
// it and tells the owner, who publishes new pools (the same update a reload makes).

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/stats/discovery_stats.hpp"

namespace fulcrum {

class DiscoveryWatch {
public:
    // Frees a watch through close(): its handles close on the loop first.
    struct Closer {
        void operator()(DiscoveryWatch* watch) const { watch->close(); }
    };
    using Ptr = std::unique_ptr<DiscoveryWatch, Closer>;

    // What a watch starts from: a watch it replaces (a reload changed the settings) hands
    // over its set and counters, so the service keeps its backends until the new one
    // finds its own.
    struct Setup {
        uv_loop_t* loop = nullptr;
        ServiceConfig service;  // as configured
        std::vector<BackendConfig> current;
        std::shared_ptr<DiscoveryStats> stats;
        // Runs on the loop when the set changed, with the service's name.
        std::function<void(const std::string&)> on_change;
    };

    DiscoveryWatch(const DiscoveryWatch&) = delete;
    DiscoveryWatch& operator=(const DiscoveryWatch&) = delete;

    const ServiceConfig& service() const { return setup_.service; }
    // The set in use, sorted by name.
    const std::vector<BackendConfig>& current() const { return setup_.current; }
    const std::shared_ptr<DiscoveryStats>& stats() const { return setup_.stats; }

protected:
    explicit DiscoveryWatch(Setup setup);
    virtual ~DiscoveryWatch() = default;
    // Stops; frees this once its handles closed (and its thread, if any, ended). Nothing
    // calls back after.
    virtual void close() = 0;

    uv_loop_t* loop() const { return setup_.loop; }
    const DiscoveryConfig& discovery() const { return *setup_.service.discovery; }
    // "service redis: etcd /fulcrum/redis/", the start of its log lines.
    std::string label() const;
    // Makes `found` (sorted by name) the set in use: when it differs, logs one line with
    // what changed and tells the owner.
    void replace(std::vector<BackendConfig> found);

private:
    Setup setup_;
};

}  // namespace fulcrum
