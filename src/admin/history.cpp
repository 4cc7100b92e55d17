#include "fulcrum/admin/history.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace fulcrum {

namespace {

std::uint64_t service_failures(const ServiceSample& s) {
    // Refused at accept, a bad PROXY header, a limit, or on_failure (which the queue's
    // rejections also count, under no_backend).
    return s.refused + s.proxy_rejected +
           std::accumulate(s.no_backend.begin(), s.no_backend.end(), std::uint64_t{0}) +
           s.rejected[static_cast<std::size_t>(Rejection::per_source)] +
           s.rejected[static_cast<std::size_t>(Rejection::rate)];
}

}  // namespace

History::History(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 2)) {}

void History::record(double unix_seconds, const std::vector<ServiceSample>& services) {
    std::lock_guard lock(mutex_);
    if (times_.size() < capacity_) {
        times_.push_back(unix_seconds);
    } else {
        times_[next_] = unix_seconds;
    }
    const std::size_t slot = next_;
    next_ = (next_ + 1) % capacity_;
    ++samples_;
    for (auto& [key, series] : series_) series.points[slot] = {};

    order_.clear();
    for (const ServiceSample& s : services) {
        std::vector<std::string>& names = order_.emplace_back(std::vector<std::string>{s.name});
        Totals service{s.accepted, 0, 0, service_failures(s)};
        for (const BackendSample& b : s.backends) {
            names.push_back(b.name);
            service.bytes_in += b.bytes_sent;
            service.bytes_out += b.bytes_received;
            add_point(s.name + '\n' + b.name, unix_seconds, static_cast<double>(b.active),
                      {b.connections, b.bytes_sent, b.bytes_received, b.connect_failures});
        }
        add_point(s.name, unix_seconds, static_cast<double>(s.sessions), service);
    }
    // A series not seen for a whole ring has no point left to show.
    std::erase_if(series_, [&](const auto& entry) {
        return samples_ - entry.second.last_sample >= capacity_;
    });
}

void History::add_point(const std::string& key, double now, double sessions, const Totals& totals) {
    auto it = series_.find(key);
    if (it == series_.end()) {
        if (series_.size() >= max_series) return;
        it = series_.emplace(key, Series{std::vector<Point>(capacity_), false, {}, 0, 0}).first;
    }
    Series& series = it->second;
    const std::size_t slot = (next_ + capacity_ - 1) % capacity_;
    Point& point = series.points[slot];
    point.sessions = static_cast<float>(sessions);
    const double elapsed = now - series.last_time;
    // Rates from the previous point, if it was the previous sample and no counter went
    // back (a backend renamed into an old name starts from zero).
    if (series.has_last && series.last_sample + 1 == samples_ && elapsed > 0 &&
        totals.connections >= series.last.connections && totals.bytes_in >= series.last.bytes_in &&
        totals.bytes_out >= series.last.bytes_out && totals.failures >= series.last.failures) {
        auto rate = [elapsed](std::uint64_t now_total, std::uint64_t then_total) {
            return static_cast<float>(static_cast<double>(now_total - then_total) / elapsed);
        };
        point.connections = rate(totals.connections, series.last.connections);
        point.bytes_in = rate(totals.bytes_in, series.last.bytes_in);
        point.bytes_out = rate(totals.bytes_out, series.last.bytes_out);
        point.failures = rate(totals.failures, series.last.failures);
    }
    series.has_last = true;
    series.last = totals;
    series.last_time = now;
    series.last_sample = samples_;
}

nlohmann::ordered_json History::series_json(const Series& series) const {
    nlohmann::ordered_json sessions = nlohmann::ordered_json::array();
    nlohmann::ordered_json connections = nlohmann::ordered_json::array();
    nlohmann::ordered_json bytes_in = nlohmann::ordered_json::array();
    nlohmann::ordered_json bytes_out = nlohmann::ordered_json::array();
    nlohmann::ordered_json failures = nlohmann::ordered_json::array();
    const std::size_t count = times_.size();
    const std::size_t oldest = count < capacity_ ? 0 : next_;
    for (std::size_t i = 0; i < count; ++i) {
        const Point& p = series.points[(oldest + i) % capacity_];
        auto value = [](float v) {
            return std::isnan(v) ? nlohmann::ordered_json(nullptr)
                                 : nlohmann::ordered_json(static_cast<double>(v));
        };
        sessions.push_back(value(p.sessions));
        connections.push_back(value(p.connections));
        bytes_in.push_back(value(p.bytes_in));
        bytes_out.push_back(value(p.bytes_out));
        failures.push_back(value(p.failures));
    }
    return {{"sessions", std::move(sessions)},
            {"connections_per_second", std::move(connections)},
            {"bytes_in_per_second", std::move(bytes_in)},
            {"bytes_out_per_second", std::move(bytes_out)},
            {"failures_per_second", std::move(failures)}};
}

nlohmann::ordered_json History::to_json() const {
    std::lock_guard lock(mutex_);
    nlohmann::ordered_json times = nlohmann::ordered_json::array();
    const std::size_t count = times_.size();
    const std::size_t oldest = count < capacity_ ? 0 : next_;
    for (std::size_t i = 0; i < count; ++i) times.push_back(times_[(oldest + i) % capacity_]);
    nlohmann::ordered_json services = nlohmann::ordered_json::array();
    for (const std::vector<std::string>& names : order_) {
        const auto service = series_.find(names[0]);
        if (service == series_.end()) continue;  // past max_series
        nlohmann::ordered_json entry = series_json(service->second);
        entry["name"] = names[0];
        nlohmann::ordered_json backends = nlohmann::ordered_json::array();
        for (std::size_t i = 1; i < names.size(); ++i) {
            const auto backend = series_.find(names[0] + '\n' + names[i]);
            if (backend == series_.end()) continue;
            nlohmann::ordered_json b = series_json(backend->second);
            b["name"] = names[i];
            backends.push_back(std::move(b));
        }
        entry["backends"] = std::move(backends);
        services.push_back(std::move(entry));
    }
    return {
        {"interval_seconds", 1}, {"times", std::move(times)}, {"services", std::move(services)}};
}

}  // namespace fulcrum
