#pragma once
// The Prometheus exposition of the counters: a scrape samples them into plain values
// (summing the workers' slots), and rendering works on those samples only, so the text
// format is testable without sockets.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/stats/check_history.hpp"
#include "fulcrum/stats/discovery_stats.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

// What a scrape reads, as plain values.

// A backend's CheckHistory as of the scrape.
struct CheckHistorySample {
    std::uint64_t to_up = 0;
    std::uint64_t to_down = 0;
    std::array<std::uint64_t, check_failure_count> failures{};  // indexed by CheckFailure
    double last_change_seconds = 0;                             // Unix time
    double downtime_seconds = 0;
};

struct BackendSample {
    std::string name;
    std::uint64_t connections = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t retries = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t active = 0;
    bool healthy = true;
    bool drained = false;
    double effective_weight = 1;
    int max_connections = 0;  // 0: no limit
    HistogramSample session_duration;
    HistogramSample connect_duration;
    std::optional<HistogramSample> check_duration;  // absent with health checks off
    std::optional<CheckHistorySample> checks;       // likewise
};

// A service's discovery, for services that have one.
struct DiscoverySample {
    bool etcd = false;                                                 // else DNS
    std::array<std::uint64_t, resolution_result_count> resolutions{};  // by ResolutionResult
    std::uint64_t backends = 0;
    // etcd
    bool watch_up = false;
    std::uint64_t events = 0;
    std::uint64_t invalid_values = 0;
    std::int64_t revision = 0;
};

struct ServiceSample {
    std::string name;
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;
    std::uint64_t proxy_rejected = 0;
    std::array<std::uint64_t, no_backend_count> no_backend{};  // indexed by NoBackend
    std::array<std::uint64_t, session_end_count> ended{};      // indexed by SessionEnd
    std::uint64_t sessions = 0;                                // open now
    std::array<std::uint64_t, rejection_count> rejected{};     // indexed by Rejection
    std::uint64_t sni_routed = 0;
    std::uint64_t queue_length = 0;
    std::uint64_t tracked_sources = 0;  // entries of the per-source limits' table
    std::optional<DiscoverySample> discovery;
    std::vector<BackendSample> backends;
};

// The standard process_* values, as the Prometheus client libraries' process collector
// reads them from /proc (absent where it is not readable).
struct ProcessStats {
    std::optional<double> cpu_seconds;
    std::optional<std::uint64_t> resident_bytes;
    std::optional<std::uint64_t> open_fds;
    std::optional<std::uint64_t> max_fds;
};
ProcessStats read_process_stats();

struct ProcessSample {
    double uptime_seconds = 0;
    double start_time_seconds = 0;  // Unix time
    ProcessStats stats;
    unsigned workers = 0;
    std::uint64_t max_connections = 0;
    std::uint64_t accept_pauses = 0;
    double last_reload_success_seconds = 0;  // Unix time of the last configuration applied
    std::uint64_t client_connections = 0;
    std::uint64_t reloads = 0;
    std::uint64_t reload_failures = 0;
    std::uint64_t splice_bytes = 0;
    std::uint64_t splice_transfers = 0;
    std::uint64_t splice_pool_exhausted = 0;
    std::uint64_t splice_pipes_in_use = 0;
    std::uint64_t splice_pipes_idle = 0;
};

struct ListenSample {
    std::string listen;
    std::array<std::uint64_t, preread_failure_count> preread_failures{};  // by PrereadFailure
};

struct MetricsSample {
    ProcessSample process;
    std::vector<ServiceSample> services;
    std::vector<ListenSample> listens;
};

struct ServiceState;

// Reads every counter of `services` (summing the workers' slots).
std::vector<ServiceSample> sample_services(const std::vector<ServiceState>& services);

// Reads the counters of the listen address `listen` (summing the workers' slots).
ListenSample sample_listen(const std::string& listen, const ListenCounters& counters);

// Adds every worker's own counters (splice, accept pauses) to `process`.
void sample_splice(const WorkerCounters& counters, ProcessSample& process);

// The Prometheus text exposition format 0.0.4: HELP and TYPE before each family's
// samples, label values escaped, histograms as cumulative buckets with +Inf, _sum, _count.
std::string render_prometheus(const MetricsSample& sample);

// A label value escaped for the text format: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);

}  // namespace fulcrum
