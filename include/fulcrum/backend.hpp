#pragma once
// One upstream server and its live state, shared by every worker thread. The state is
// lock-free: workers read `healthy` and move `active` with relaxed atomics; nothing on
// the data path waits for another thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "fulcrum/config.hpp"

namespace fulcrum {

// Milliseconds on the monotonic clock, comparable across threads.
std::int64_t steady_now_ms();

struct Backend {
    explicit Backend(BackendConfig cfg) : config(std::move(cfg)) {}

    const BackendConfig config;
    std::atomic<bool> healthy{true};  // routable per active checks (set on the main loop)
    std::atomic<int> active{0};       // sessions connecting or connected, all workers
    std::atomic<unsigned long> connect_failures{0};
    // Passive detection: out of rotation until this time (0: not out).
    std::atomic<std::int64_t> out_until_ms{0};
    // Set when passive detection takes the backend out; the health checker takes it.
    std::atomic<bool> passive_tripped{false};

    bool eligible() const {
        if (!healthy.load(std::memory_order_relaxed)) return false;
        const std::int64_t until = out_until_ms.load(std::memory_order_relaxed);
        return until == 0 || steady_now_ms() >= until;
    }

    // Counts a connect failure seen while proxying; true when it takes the backend out
    // (max_failures within window). Lock-free: workers call it concurrently, and a race
    // at a window's edge can at worst miscount one failure.
    bool record_connect_failure(std::int64_t now_ms, const PassiveConfig& passive);

private:
    std::atomic<std::int64_t> window_start_ms_{0};
    std::atomic<int> window_failures_{0};
};

// The backends of one service: an immutable snapshot; a reload builds a new one and
// sessions keep the one they started with.
struct Pool {
    // Reuses the backends of `previous` whose configuration is unchanged, so that they
    // keep their health state and active counts across a reload.
    explicit Pool(const ServiceConfig& service, const Pool* previous = nullptr);
    std::vector<std::shared_ptr<Backend>> backends;
};

}  // namespace fulcrum
