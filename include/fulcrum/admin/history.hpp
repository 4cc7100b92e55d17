#pragma once
// The last minutes of every service and backend, one point per second, for the status
// page's charts (GET /history): open sessions, and per-second rates of new connections,
// bytes each way and failures, worked out from the counters' growth between two samples.
// Bounded: `capacity` points per series and at most `max_series` series; a series that
// leaves the configuration is dropped once its last point has aged out.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fulcrum/admin/prometheus.hpp"

namespace fulcrum {

class History {
public:
    static constexpr std::size_t default_capacity = 15 * 60;  // 15 minutes at one per second
    static constexpr std::size_t max_series = 1024;

    explicit History(std::size_t capacity = default_capacity);

    // One sample of every service's counters, read at `unix_seconds`. Rates need two
    // samples: a series' first point has sessions only (rates are null).
    void record(double unix_seconds, const std::vector<ServiceSample>& services);

    // {"interval_seconds": 1, "times": [...oldest first], "services": [{"name", "sessions",
    // "connections_per_second", "bytes_in_per_second", "bytes_out_per_second",
    // "failures_per_second", "backends": [{"name", ...the same five}]}]}: one array entry per
    // time, null where the series had no point.
    nlohmann::ordered_json to_json() const;

private:
    // The totals a rate is worked out from.
    struct Totals {
        std::uint64_t connections = 0;
        std::uint64_t bytes_in = 0;
        std::uint64_t bytes_out = 0;
        std::uint64_t failures = 0;
    };
    // 20 bytes: NaN where there is no value (no point, or no rate yet).
    struct Point {
        float sessions = nan;
        float connections = nan;
        float bytes_in = nan;
        float bytes_out = nan;
        float failures = nan;
    };
    static constexpr float nan = std::numeric_limits<float>::quiet_NaN();
    struct Series {
        std::vector<Point> points;  // a ring aligned with times_
        bool has_last = false;      // `last` holds a reading
        Totals last;
        double last_time = 0;
        std::uint64_t last_sample = 0;  // samples_ when it last had a point
    };

    void add_point(const std::string& key, double now, double sessions, const Totals& totals);
    nlohmann::ordered_json series_json(const Series& series) const;

    const std::size_t capacity_;
    mutable std::mutex mutex_;   // record() runs on the sampler thread, to_json() on requests
    std::vector<double> times_;  // a ring: the oldest at next_ once full
    std::size_t next_ = 0;
    std::uint64_t samples_ = 0;
    std::map<std::string, Series> series_;         // "service" and "service\nbackend"
    std::vector<std::vector<std::string>> order_;  // the latest sample's services, backends
};

}  // namespace fulcrum
