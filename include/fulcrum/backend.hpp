#pragma once
// One upstream server and its live state, shared by every worker thread. The state is
// lock-free: workers read `healthy` and move `active` with relaxed atomics; nothing on
// the data path waits for another thread.

#include <atomic>
#include <memory>
#include <vector>

#include "fulcrum/config.hpp"

namespace fulcrum {

struct Backend {
    explicit Backend(BackendConfig cfg) : config(std::move(cfg)) {}

    const BackendConfig config;
    std::atomic<bool> healthy{true};
    std::atomic<int> active{0};                 // sessions connecting or connected, all workers
    std::atomic<unsigned long> connect_failures{0};

    bool eligible() const { return healthy.load(std::memory_order_relaxed); }
};

// The backends of one service: an immutable snapshot; a reload builds a new one and
// sessions keep the one they started with.
struct Pool {
    explicit Pool(const ServiceConfig& service);
    std::vector<std::shared_ptr<Backend>> backends;
};

}  // namespace fulcrum
