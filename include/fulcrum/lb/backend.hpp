#pragma once
// One upstream server: its live state, shared by every worker thread, and the pool
// snapshots that name it. A backend's identity is its service and its name: health,
// counters and active count belong to the name and survive reloads and address changes;
// what can change (address, weight, PROXY header) is in each snapshot's PoolMember.
// The live state is lock-free: workers read it and count their traffic in their own slot
// of `traffic`; nothing on the data path waits for another thread.

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
#include "fulcrum/stats/check_history.hpp"
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
    Backend(std::string backend_name, std::size_t workers)
        : name(std::move(backend_name)), traffic(workers) {}

    const std::string name;
    // What active checks say (set on the main loop). Shown by /status and /metrics.
    std::atomic<bool> check_up{true};
    // Whether active checks let traffic in: check_up, or every backend of the service is
    // down and all_unhealthy = "fail-open" (set on the main loop).
    std::atomic<bool> routable{true};
    std::atomic<bool> drained{false};  // set by the admin endpoint: no new connections
    // Set from the discovered value ("drain" in etcd) by each pool snapshot built: no new
    // connections either, apart from the admin's so that neither undoes the other.
    std::atomic<bool> discovery_drained{false};
    // Set by the admin endpoint ("set weight"): replaces the configured weight until the
    // next reload; 0: none.
    std::atomic<int> weight_override{0};
    // Sessions connecting or connected, all workers; moved by Balancer pick and release
    // (or handed from a session that ends to one waiting in the service's queue).
    std::atomic<int> active{0};
    // When it last turned routable after not being (health rise, enable, added while the
    // service ran): slow start ramps its weight from then. 0: routable since it started.
    std::atomic<std::int64_t> up_since_ms{0};
    // When it was drained or left the pool: drain_timeout counts from then. 0: neither.
    std::atomic<std::int64_t> leaving_since_ms{0};
    // Passive detection: out of rotation until this time (0: not out).
    std::atomic<std::int64_t> out_until_ms{0};
    // Set when passive detection takes the backend out; the health checker takes it.
    std::atomic<bool> passive_tripped{false};
    // Written by each worker in its own slot only.
    PerWorker<BackendTraffic> traffic;
    // Probe durations, written on the main loop only.
    DurationHistogram<check_duration_bounds> check_duration;
    // Transitions, failures by reason and downtime, as the active checks saw them.
    CheckHistory check_history;

    // Out of rotation after connect failures seen while proxying.
    bool passive_out() const {
        const std::int64_t until = out_until_ms.load(std::memory_order_relaxed);
        return until != 0 && steady_now_ms() < until;
    }
    // Active and passive checks both find it up (what an operator is shown).
    bool passes_checks() const {
        return check_up.load(std::memory_order_relaxed) && !passive_out();
    }
    // Drained by the admin endpoint or by its discovered value.
    bool is_drained() const {
        return drained.load(std::memory_order_relaxed) ||
               discovery_drained.load(std::memory_order_relaxed);
    }
    // It may take a new connection: routable, not out, not drained.
    bool eligible() const {
        return !is_drained() && routable.load(std::memory_order_relaxed) && !passive_out();
    }

    // Takes one of `max_connections` slots (0: no limit); false when all are taken. Exact
    // across workers: a compare-and-swap, never a count past the limit.
    bool take_slot(int max_connections);
    bool has_room(int max_connections) const {
        return max_connections == 0 || active.load(std::memory_order_relaxed) < max_connections;
    }
    // Routing may use it again (health rise, enable): restarts slow start.
    void mark_up(std::int64_t now_ms) { up_since_ms.store(now_ms, std::memory_order_relaxed); }
    // Drained or removed: starts the drain deadline (kept if it already runs).
    void mark_leaving(std::int64_t now_ms) {
        std::int64_t none = 0;
        leaving_since_ms.compare_exchange_strong(none, now_ms, std::memory_order_relaxed);
    }

    // Counts a connect failure seen while proxying; true when it takes the backend out
    // (max_failures within window). Lock-free: workers call it concurrently, and a race
    // at a window's edge can at worst miscount one failure.
    bool record_connect_failure(std::int64_t now_ms, const PassiveConfig& passive);

    // The latest probe: recorded on the main loop, read by the admin endpoint. A mutex is
    // fine here: neither side is on the data path.
    void record_check(CheckRecord check);
    std::optional<CheckRecord> last_check() const;
    // The latest probe that failed, which a later pass does not hide.
    std::optional<CheckRecord> last_failure() const;

private:
    std::atomic<std::int64_t> window_start_ms_{0};
    std::atomic<int> window_failures_{0};
    mutable std::mutex check_mutex_;
    std::optional<CheckRecord> last_check_;
    std::optional<CheckRecord> last_failure_;
};

// A backend as one pool snapshot has it.
struct PoolMember {
    // The weight slow start ramps: the admin endpoint's override, else the configured one.
    int base_weight() const {
        const int override = backend->weight_override.load(std::memory_order_relaxed);
        return override > 0 ? override : config.weight;
    }

    std::shared_ptr<Backend> backend;
    BackendConfig config;  // address, configured weight, PROXY header: fixed in this snapshot
    // What the strategies weigh: the configured weight, scaled down while slow start ramps
    // it (source-hash excepted: its table keeps the configured weights).
    double effective_weight = 1;
};

// The share of its weight a backend that turned routable at `up_since_ms` has at `now_ms`
// under `slow_start`: from 1% up in twentieths, so a ramp rebuilds the pool 20 times at
// most; 1 when there is no ramp (up_since_ms 0, slow_start 0, or the ramp is over).
double slow_start_factor(Duration slow_start, std::int64_t up_since_ms, std::int64_t now_ms);

// The backends of one service: an immutable snapshot; a reload builds a new one and
// sessions keep the one they started with.
struct Pool {
    // Takes the live state of `previous`'s backends by name, so that a backend keeps its
    // health, drain, active count and counters across a reload, whatever else changed.
    // `workers` sizes the per-worker counters of backends that are new. A backend new to
    // a running service (`previous` set) starts its slow start at `now_ms`; effective
    // weights are as of `now_ms`.
    explicit Pool(const ServiceConfig& service, const Pool* previous = nullptr,
                  std::size_t workers = 1, std::int64_t now_ms = steady_now_ms());
    std::vector<PoolMember> members;
    bool has_backups = false;  // some member is a backup

    // The member named `name`, or nullptr.
    const PoolMember* find(std::string_view name) const;
    // The same members, with their effective weights as of `now_ms` under `slow_start`.
    Pool reweighted(Duration slow_start, std::int64_t now_ms) const;
};

}  // namespace fulcrum
