#pragma once
// Counters of the data path and health checks.
//
// Hot counters cost the data path no shared write: every counter has one writer thread
// (a worker, or the main loop for health checks) that adds with a relaxed load and store,
// and a backend's or service's counters hold one slot per worker, each on its own cache
// line. The admin thread reads with relaxed loads and sums the slots when scraped
// (fulcrum/admin/prometheus.hpp).

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/stats/session_end.hpp"

namespace fulcrum {

// A count with a single writer thread; any thread may read it.
class LocalCounter {
public:
    // Not a read-modify-write: correct only because one thread writes.
    void add(std::uint64_t n = 1) {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// A level with a single writer thread; any thread may read it.
class LocalGauge {
public:
    void set(std::uint64_t n) { value_.store(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// Upper bounds, in seconds, of the histogram buckets (the +Inf bucket is implicit).
// Sessions last from milliseconds (one request) to hours (streams); probes are bounded
// by their timeout.
inline constexpr std::array<double, 15> session_duration_bounds{
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600};
inline constexpr std::array<double, 12> check_duration_bounds{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

// Connect times: from a tenth of a millisecond (same host) to connect_timeout's usual range.
inline constexpr std::array<double, 12> connect_duration_bounds{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2};

// A histogram as read: per-bucket counts (not cumulative; the last is above every bound).
struct HistogramSample {
    std::span<const double> bounds;
    std::vector<std::uint64_t> counts;  // bounds.size() + 1 entries
    double sum_seconds = 0;
};

// Durations counted by bucket, with a single writer thread.
template <const auto& Bounds>
class DurationHistogram {
public:
    void observe(std::chrono::microseconds duration) {
        const double seconds = std::chrono::duration<double>(duration).count();
        std::size_t bucket = 0;
        while (bucket < std::size(Bounds) && seconds > Bounds[bucket]) ++bucket;
        counts_[bucket].add();
        sum_us_.add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, duration.count())));
    }
    // Adds what this histogram holds to `sample` (summing the slots of several workers).
    void add_to(HistogramSample& sample) const {
        sample.bounds = Bounds;
        sample.counts.resize(counts_.size());
        for (std::size_t i = 0; i < counts_.size(); ++i) sample.counts[i] += counts_[i].value();
        sample.sum_seconds += static_cast<double>(sum_us_.value()) / 1e6;
    }

private:
    std::array<LocalCounter, std::size(Bounds) + 1> counts_;
    LocalCounter sum_us_;
};

// One slot per worker thread, each on its own cache line, so that two workers counting
// never write the same line.
template <typename Slot>
class PerWorker {
public:
    explicit PerWorker(std::size_t workers)
        : slots_(std::make_unique<Aligned[]>(workers)), count_(workers) {}

    // Only worker `worker` writes to what this returns.
    Slot& operator[](std::size_t worker) {
        assert(worker < count_);
        return slots_[worker].slot;
    }
    template <typename Visit>
    void for_each(Visit&& visit) const {
        for (std::size_t i = 0; i < count_; ++i) visit(slots_[i].slot);
    }

private:
    static constexpr std::size_t cache_line = 64;
    struct alignas(cache_line) Aligned {
        Slot slot;
    };
    std::unique_ptr<Aligned[]> slots_;
    std::size_t count_;
};

// One worker's counts for one backend.
struct BackendTraffic {
    LocalCounter connections;       // connects that succeeded
    LocalCounter connect_failures;  // connects refused or timed out
    LocalCounter retries;           // attempts made after another backend failed
    LocalCounter bytes_sent;        // read from clients, forwarded to the backend
    LocalCounter bytes_received;    // read from the backend, forwarded to clients
    DurationHistogram<session_duration_bounds> session_duration;
    DurationHistogram<connect_duration_bounds> connect_duration;  // connects that succeeded
};

// One worker's counts for one service.
// Why a connection was turned away before reaching a backend, by a limit of its service.
enum class Rejection {
    queue_full,     // every backend full and queue_max waiting (or no queue)
    queue_timeout,  // waited queue_timeout for a backend slot
    per_source,     // max_connections_per_source or connection_rate_per_source
    rate,           // the service's connection_rate
};
inline constexpr std::size_t rejection_count = 4;
std::string_view to_string(Rejection reason);  // "queue_full", ...

struct ServiceTraffic {
    LocalCounter accepted;  // client connections served
    LocalCounter refused;   // closed at once: max_connections reached
    // Closed for a missing, malformed or late PROXY header, or an untrusted peer.
    LocalCounter proxy_rejected;
    // Connections no backend could take, by why (NoBackend).
    std::array<LocalCounter, no_backend_count> no_backend;
    std::array<LocalCounter, session_end_count> ended;   // by SessionEnd
    LocalGauge sessions;                                 // open now
    std::array<LocalCounter, rejection_count> rejected;  // by Rejection
    LocalCounter sni_routed;                             // chosen by the ClientHello's server name
};
using ServiceCounters = PerWorker<ServiceTraffic>;

// Why a connection was closed during its pre-read phases, before a service took it.
enum class PrereadFailure {
    proxy_header,  // accept_proxy: a malformed PROXY header, or a peer not in proxy_trusted
    malformed,     // a malformed TLS record or ClientHello, or one past 16 KiB
    timeout,       // no complete PROXY header or ClientHello within its timeout
    closed,        // the client closed or reset before the phase was complete
    not_tls,       // sni_require_tls: the client does not begin with a ClientHello
    no_match,      // no service of the address takes the server name, and none has "*"
    refused,       // runtime.max_connections reached before a service was chosen
};
inline constexpr std::size_t preread_failure_count = 7;
std::string_view to_string(PrereadFailure reason);  // "proxy_header", ...

// One worker's counts for one listen address.
struct ListenTraffic {
    std::array<LocalCounter, preread_failure_count> preread_failures;  // by PrereadFailure
};
using ListenCounters = PerWorker<ListenTraffic>;

// One worker's own counts: its zero-copy (splice) path and its accept pauses.
struct WorkerTraffic {
    LocalCounter accept_pauses;   // accepting paused: out of descriptors
    LocalCounter bytes;           // moved socket -> pipe -> socket, also in the backend bytes
    LocalCounter transfers;       // times a direction switched from copying to splice
    LocalCounter pool_exhausted;  // bulk reads left on the copy path: no pipe was free
    LocalGauge pipes_in_use;      // pipes holding bytes of a session right now
    LocalGauge pipes_idle;        // empty pipes kept for reuse
};
using WorkerCounters = PerWorker<WorkerTraffic>;

// Descriptors open in this process (/proc/self/fd), or nothing when it cannot be read.
std::optional<std::uint64_t> count_open_fds();

}  // namespace fulcrum
