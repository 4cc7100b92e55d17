#pragma once
// One upstream server and its live state, shared by every worker thread. The state is
// lock-free: workers read `healthy` and `drained` and move `active` with relaxed atomics,
// and count their traffic in their own slot of `traffic`; nothing on the data path waits
// for another thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

// Milliseconds on the monotonic clock, comparable across threads.
std::int64_t steady_now_ms();

// What the latest active health probe of a backend saw.
struct CheckRecord {
    bool passed = false;
    std::string detail;  // "status 200", "connect timeout", ...
    std::chrono::system_clock::time_point at;
    std::chrono::microseconds duration{0};
};

struct Backend {
    // `workers`: how many worker threads count traffic (one slot each).
    explicit Backend(BackendConfig cfg, std::size_t workers = 1)
        : config(std::move(cfg)), traffic(workers) {}

    const BackendConfig config;
    std::atomic<bool> healthy{true};   // routable per active checks (set on the main loop)
    std::atomic<bool> drained{false};  // set by the admin endpoint: no new connections
    std::atomic<int> active{0};        // sessions connecting or connected, all workers
    // Passive detection: out of rotation until this time (0: not out).
    std::atomic<std::int64_t> out_until_ms{0};
    // Set when passive detection takes the backend out; the health checker takes it.
    std::atomic<bool> passive_tripped{false};
    // Written by each worker in its own slot only.
    PerWorker<BackendTraffic> traffic;
    // Probe durations, written on the main loop only.
    DurationHistogram<check_duration_bounds> check_duration;

    // Health checks, active and passive, let it take connections.
    bool passes_checks() const {
        if (!healthy.load(std::memory_order_relaxed)) return false;
        const std::int64_t until = out_until_ms.load(std::memory_order_relaxed);
        return until == 0 || steady_now_ms() >= until;
    }
    // It may take a new connection: passes its checks and is not drained.
    bool eligible() const { return !drained.load(std::memory_order_relaxed) && passes_checks(); }

    // Counts a connect failure seen while proxying; true when it takes the backend out
    // (max_failures within window). Lock-free: workers call it concurrently, and a race
    // at a window's edge can at worst miscount one failure.
    bool record_connect_failure(std::int64_t now_ms, const PassiveConfig& passive);

    // The latest probe: recorded on the main loop, read by the admin endpoint. A mutex is
    // fine here: neither side is on the data path.
    void record_check(CheckRecord check);
    std::optional<CheckRecord> last_check() const;

private:
    std::atomic<std::int64_t> window_start_ms_{0};
    std::atomic<int> window_failures_{0};
    mutable std::mutex check_mutex_;
    std::optional<CheckRecord> last_check_;
};

// The backends of one service: an immutable snapshot; a reload builds a new one and
// sessions keep the one they started with.
struct Pool {
    // Reuses the backends of `previous` whose configuration is unchanged, so that they
    // keep their health state, active counts and counters across a reload. A backend
    // whose address or weight changed is new, but stays drained if it was. `workers`
    // sizes the new backends' per-worker counters.
    explicit Pool(const ServiceConfig& service, const Pool* previous = nullptr,
                  std::size_t workers = 1);
    std::vector<std::shared_ptr<Backend>> backends;

    // The backend named `name`, or nullptr.
    Backend* find(std::string_view name) const;
};

// A service's configuration, the backend pool it routes to, and its counters (kept
// across reloads for as long as the service exists).
struct ServiceState {
    std::shared_ptr<const ServiceConfig> config;
    std::shared_ptr<const Pool> pool;
    std::shared_ptr<ServiceCounters> counters;
};

}  // namespace fulcrum
