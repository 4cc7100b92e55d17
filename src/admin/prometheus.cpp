#include "fulcrum/admin/prometheus.hpp"

#include <fmt/format.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <sstream>
#include <utility>

#include "fulcrum/lb/service_state.hpp"

namespace fulcrum {

namespace {

using Label = std::pair<std::string_view, std::string_view>;
using Labels = std::initializer_list<Label>;

// Writes families in order: each one's HELP and TYPE, then all of its samples.
class Exposition {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        for (const char c : help) {  // HELP escapes backslash and newline only
            if (c == '\\') {
                out_ += "\\\\";
            } else if (c == '\n') {
                out_ += "\\n";
            } else {
                out_ += c;
            }
        }
        fmt::format_to(std::back_inserter(out_), "\n# TYPE {} {}\n", name, type);
    }

    void sample(std::string_view name, Labels labels, std::string_view extra_label,
                std::string_view extra_value, std::string_view value) {
        out_ += name;
        bool first = true;
        auto label = [&](std::string_view key, std::string_view text) {
            out_ += first ? '{' : ',';
            first = false;
            out_ += key;
            out_ += "=\"";
            out_ += escape_label_value(text);
            out_ += '"';
        };
        for (const auto& [key, text] : labels) label(key, text);
        if (!extra_label.empty()) label(extra_label, extra_value);
        if (!first) out_ += '}';
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }
    void sample(std::string_view name, Labels labels, std::uint64_t value) {
        sample(name, labels, {}, {}, std::to_string(value));
    }
    void sample(std::string_view name, Labels labels, double value) {
        sample(name, labels, {}, {}, number(value));
    }

    // Cumulative buckets with +Inf, then _sum and _count (the +Inf bucket's count, so
    // the two always agree).
    void histogram(std::string_view name, Labels labels, const HistogramSample& h) {
        std::uint64_t cumulative = 0;
        const std::string bucket = fmt::format("{}_bucket", name);
        for (std::size_t i = 0; i < h.counts.size(); ++i) {
            cumulative += h.counts[i];
            const std::string bound = i < h.bounds.size() ? number(h.bounds[i]) : "+Inf";
            sample(bucket, labels, "le", bound, std::to_string(cumulative));
        }
        sample(fmt::format("{}_sum", name), labels, h.sum_seconds);
        sample(fmt::format("{}_count", name), labels, cumulative);
    }

    std::string take() { return std::move(out_); }

private:
    // Shortest text that reads back as the same double ("0.005", "1", "3600").
    static std::string number(double value) {
        if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
        if (std::isnan(value)) return "NaN";
        return fmt::format("{}", value);
    }

    std::string out_;
};

// Every backend counter and gauge: one name, one help text, one source (as in Envoy's
// stat lists), so that the README table and the output cannot drift apart silently.
struct BackendMetric {
    std::string_view name;
    std::string_view type;
    std::string_view help;
    std::uint64_t (*value)(const BackendSample&);
};

constexpr BackendMetric backend_metrics[] = {
    {"fulcrum_backend_connections_total", "counter", "Connections established to the backend.",
     [](const BackendSample& b) { return b.connections; }},
    {"fulcrum_backend_connect_failures_total", "counter",
     "Connects to the backend that were refused or timed out.",
     [](const BackendSample& b) { return b.connect_failures; }},
    {"fulcrum_backend_retries_total", "counter",
     "Connects to the backend made after another backend failed for the same client.",
     [](const BackendSample& b) { return b.retries; }},
    {"fulcrum_backend_bytes_sent_total", "counter",
     "Bytes read from clients and forwarded to the backend.",
     [](const BackendSample& b) { return b.bytes_sent; }},
    {"fulcrum_backend_bytes_received_total", "counter",
     "Bytes read from the backend and forwarded to clients.",
     [](const BackendSample& b) { return b.bytes_received; }},
    {"fulcrum_backend_active_connections", "gauge",
     "Sessions holding a connection (or a connect in progress) to the backend.",
     [](const BackendSample& b) { return b.active; }},
    {"fulcrum_backend_healthy", "gauge",
     "1 when active and passive health checks let the backend take connections, else 0.",
     [](const BackendSample& b) { return std::uint64_t{b.healthy}; }},
    {"fulcrum_backend_drained", "gauge",
     "1 when the backend was drained through the admin endpoint, else 0.",
     [](const BackendSample& b) { return std::uint64_t{b.drained}; }},
};

// What the active checks did, for the backends that have them.
void render_check_history(Exposition& out, const std::vector<ServiceSample>& services) {
    // Calls `write(service, backend, checks)` for every checked backend.
    auto each = [&services](auto&& write) {
        for (const ServiceSample& s : services) {
            for (const BackendSample& b : s.backends) {
                if (b.checks) write(s, b, *b.checks);
            }
        }
    };
    out.family("fulcrum_backend_check_transitions_total", "counter",
               "Times the health checks took the backend down (to=\"down\") or brought it back "
               "(to=\"up\").");
    each([&](const ServiceSample& s, const BackendSample& b, const CheckHistorySample& c) {
        out.sample("fulcrum_backend_check_transitions_total",
                   {{"service", s.name}, {"backend", b.name}}, "to", "up", std::to_string(c.to_up));
        out.sample("fulcrum_backend_check_transitions_total",
                   {{"service", s.name}, {"backend", b.name}}, "to", "down",
                   std::to_string(c.to_down));
    });
    out.family("fulcrum_backend_check_failures_total", "counter",
               "Active health checks of the backend that failed, by why: timeout, refused, "
               "reset, status, response, error.");
    each([&](const ServiceSample& s, const BackendSample& b, const CheckHistorySample& c) {
        for (std::size_t i = 0; i < check_failure_count; ++i) {
            out.sample("fulcrum_backend_check_failures_total",
                       {{"service", s.name}, {"backend", b.name}}, "reason",
                       to_string(static_cast<CheckFailure>(i)), std::to_string(c.failures[i]));
        }
    });
    out.family("fulcrum_backend_last_change_timestamp_seconds", "gauge",
               "When the health checks last changed the backend's state (or first checked "
               "it), since the Unix epoch.");
    each([&](const ServiceSample& s, const BackendSample& b, const CheckHistorySample& c) {
        out.sample("fulcrum_backend_last_change_timestamp_seconds",
                   {{"service", s.name}, {"backend", b.name}}, c.last_change_seconds);
    });
    out.family("fulcrum_backend_downtime_seconds_total", "counter",
               "Time the health checks have found the backend down, in all.");
    each([&](const ServiceSample& s, const BackendSample& b, const CheckHistorySample& c) {
        out.sample("fulcrum_backend_downtime_seconds_total",
                   {{"service", s.name}, {"backend", b.name}}, c.downtime_seconds);
    });
}

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string render_prometheus(const MetricsSample& sample) {
    Exposition out;
    const ProcessSample& process = sample.process;
    out.family("fulcrum_build_info", "gauge", "Always 1; the label says which fulcrum runs.");
    out.sample("fulcrum_build_info", {{"version", FULCRUM_VERSION}}, std::uint64_t{1});
    out.family("process_start_time_seconds", "gauge",
               "Start time of the process since the Unix epoch, in seconds.");
    out.sample("process_start_time_seconds", {}, process.start_time_seconds);
    const ProcessStats& stats = process.stats;
    if (stats.cpu_seconds) {
        out.family("process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent, in seconds.");
        out.sample("process_cpu_seconds_total", {}, *stats.cpu_seconds);
    }
    if (stats.resident_bytes) {
        out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        out.sample("process_resident_memory_bytes", {}, *stats.resident_bytes);
    }
    if (stats.open_fds) {
        out.family("process_open_fds", "gauge", "Number of open file descriptors.");
        out.sample("process_open_fds", {}, *stats.open_fds);
    }
    if (stats.max_fds) {
        out.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
        out.sample("process_max_fds", {}, *stats.max_fds);
    }
    out.family("fulcrum_max_connections", "gauge",
               "runtime.max_connections: open client connections allowed, all services.");
    out.sample("fulcrum_max_connections", {}, process.max_connections);
    out.family("fulcrum_accept_paused_total", "counter",
               "Times accepting paused because the process ran out of descriptors.");
    out.sample("fulcrum_accept_paused_total", {}, process.accept_pauses);
    out.family("fulcrum_last_reload_success_timestamp_seconds", "gauge",
               "When the running configuration was applied (start or SIGHUP), Unix time.");
    out.sample("fulcrum_last_reload_success_timestamp_seconds", {},
               process.last_reload_success_seconds);
    out.family("fulcrum_workers", "gauge", "Worker threads (event loops).");
    out.sample("fulcrum_workers", {}, std::uint64_t{process.workers});
    out.family("fulcrum_client_connections", "gauge",
               "Open client connections across all services.");
    out.sample("fulcrum_client_connections", {}, process.client_connections);
    out.family("fulcrum_reloads_total", "counter", "Configuration reloads (SIGHUP) applied.");
    out.sample("fulcrum_reloads_total", {}, process.reloads);
    out.family("fulcrum_reload_failures_total", "counter",
               "Configuration reloads rejected; the previous configuration kept running.");
    out.sample("fulcrum_reload_failures_total", {}, process.reload_failures);
    out.family("fulcrum_splice_bytes_total", "counter",
               "Bytes forwarded with splice (zero-copy), either way; also counted in the "
               "backend byte counters.");
    out.sample("fulcrum_splice_bytes_total", {}, process.splice_bytes);
    out.family("fulcrum_splice_transfers_total", "counter",
               "Times a direction of a session switched from copying to splice.");
    out.sample("fulcrum_splice_transfers_total", {}, process.splice_transfers);
    out.family("fulcrum_splice_pool_exhausted_total", "counter",
               "Bulk reads that stayed on the copy path because runtime.splice_pipes were all "
               "in use.");
    out.sample("fulcrum_splice_pool_exhausted_total", {}, process.splice_pool_exhausted);
    out.family("fulcrum_splice_pipes_in_use", "gauge",
               "Pipes holding a session's bytes, or about to, right now.");
    out.sample("fulcrum_splice_pipes_in_use", {}, process.splice_pipes_in_use);
    out.family("fulcrum_splice_pipes_idle", "gauge", "Empty pipes kept open for reuse.");
    out.sample("fulcrum_splice_pipes_idle", {}, process.splice_pipes_idle);

    out.family("fulcrum_service_accepted_total", "counter",
               "Client connections accepted, whatever became of them (see "
               "fulcrum_sessions_ended_total).");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_service_accepted_total", {{"service", s.name}}, s.accepted);
    }
    out.family("fulcrum_service_sessions", "gauge", "Client connections of the service open now.");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_service_sessions", {{"service", s.name}}, s.sessions);
    }
    out.family("fulcrum_sessions_ended_total", "counter",
               "Sessions ended, by how (the access log's end=).");
    for (const ServiceSample& s : sample.services) {
        for (std::size_t end = 0; end < session_end_count; ++end) {
            // Never a service's: fulcrum_preread_failures_total counts those connections.
            if (static_cast<SessionEnd>(end) == SessionEnd::no_service) continue;
            out.sample("fulcrum_sessions_ended_total",
                       {{"service", s.name}, {"reason", to_string(static_cast<SessionEnd>(end))}},
                       s.ended[end]);
        }
    }
    out.family("fulcrum_service_refused_total", "counter",
               "Client connections closed at once because runtime.max_connections was reached.");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_service_refused_total", {{"service", s.name}}, s.refused);
    }
    out.family("fulcrum_service_proxy_rejected_total", "counter",
               "Client connections closed for a missing, malformed or late PROXY header, or "
               "a peer not in proxy_trusted.");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_service_proxy_rejected_total", {{"service", s.name}}, s.proxy_rejected);
    }
    out.family("fulcrum_sni_routed_total", "counter",
               "Client connections given to the service by their ClientHello's server name.");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_sni_routed_total", {{"service", s.name}}, s.sni_routed);
    }
    out.family("fulcrum_preread_failures_total", "counter",
               "Client connections closed before a service took them, by listen address and "
               "why: proxy_header, malformed (ClientHello), timeout, closed, not_tls, no_match, "
               "refused (max_connections).");
    for (const ListenSample& l : sample.listens) {
        for (std::size_t reason = 0; reason < preread_failure_count; ++reason) {
            out.sample(
                "fulcrum_preread_failures_total",
                {{"listen", l.listen}, {"reason", to_string(static_cast<PrereadFailure>(reason))}},
                l.preread_failures[reason]);
        }
    }
    out.family("fulcrum_service_no_backend_total", "counter",
               "Client connections that got on_failure, by why: no_eligible (every backend "
               "down, drained or gone), connect_failed (every attempt failed), queue_timeout, "
               "queue_full.");
    for (const ServiceSample& s : sample.services) {
        for (std::size_t reason = 0; reason < no_backend_count; ++reason) {
            out.sample("fulcrum_service_no_backend_total",
                       {{"service", s.name}, {"reason", to_string(static_cast<NoBackend>(reason))}},
                       s.no_backend[reason]);
        }
    }

    out.family("fulcrum_rejected_connections_total", "counter",
               "Client connections turned away by a limit of the service, before any backend "
               "was connected: queue_full, queue_timeout, per_source (either per-source "
               "limit), rate (the service's connection_rate).");
    for (const ServiceSample& s : sample.services) {
        for (std::size_t reason = 0; reason < rejection_count; ++reason) {
            out.sample("fulcrum_rejected_connections_total",
                       {{"service", s.name}, {"reason", to_string(static_cast<Rejection>(reason))}},
                       s.rejected[reason]);
        }
    }
    out.family("fulcrum_service_queue_length", "gauge",
               "Connections waiting for a backend slot (every routable backend at its "
               "max_connections).");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_service_queue_length", {{"service", s.name}}, s.queue_length);
    }
    out.family("fulcrum_limits_tracked_sources", "gauge",
               "Client sources the per-source limits hold state for (bounded: see the README).");
    for (const ServiceSample& s : sample.services) {
        out.sample("fulcrum_limits_tracked_sources", {{"service", s.name}}, s.tracked_sources);
    }
    out.family("fulcrum_discovery_resolutions_total", "counter",
               "DNS resolutions of [service.discovery], by result.");
    for (const ServiceSample& s : sample.services) {
        if (!s.discovery || s.discovery->etcd) continue;
        for (std::size_t result = 0; result < resolution_result_count; ++result) {
            out.sample(
                "fulcrum_discovery_resolutions_total",
                {{"service", s.name}, {"result", to_string(static_cast<ResolutionResult>(result))}},
                s.discovery->resolutions[result]);
        }
    }
    out.family("fulcrum_discovery_backends", "gauge",
               "Backends [service.discovery] found, in the set in use.");
    for (const ServiceSample& s : sample.services) {
        if (s.discovery) {
            out.sample("fulcrum_discovery_backends", {{"service", s.name}}, s.discovery->backends);
        }
    }
    const auto etcd_family = [&](const char* name, const char* type, const char* help, auto value) {
        out.family(name, type, help);
        for (const ServiceSample& s : sample.services) {
            if (s.discovery && s.discovery->etcd) {
                out.sample(name, {{"service", s.name}}, value(*s.discovery));
            }
        }
    };
    etcd_family("fulcrum_etcd_watch_up", "gauge",
                "1 while the etcd watch of [service.discovery] is established, else 0.",
                [](const DiscoverySample& d) { return std::uint64_t{d.watch_up}; });
    etcd_family("fulcrum_etcd_events_total", "counter",
                "Puts and deletes seen under the etcd prefix.",
                [](const DiscoverySample& d) { return d.events; });
    etcd_family("fulcrum_etcd_invalid_values_total", "counter",
                "etcd values skipped: not JSON, a bad address, weight or drain.",
                [](const DiscoverySample& d) { return d.invalid_values; });
    etcd_family("fulcrum_etcd_revision", "gauge", "The etcd revision of the latest read or event.",
                [](const DiscoverySample& d) { return static_cast<std::uint64_t>(d.revision); });

    for (const BackendMetric& metric : backend_metrics) {
        out.family(metric.name, metric.type, metric.help);
        for (const ServiceSample& s : sample.services) {
            for (const BackendSample& b : s.backends) {
                out.sample(metric.name, {{"service", s.name}, {"backend", b.name}},
                           metric.value(b));
            }
        }
    }
    out.family("fulcrum_backend_effective_weight", "gauge",
               "The weight the strategies use: the configured one, lower while slow start "
               "ramps it.");
    for (const ServiceSample& s : sample.services) {
        for (const BackendSample& b : s.backends) {
            out.sample("fulcrum_backend_effective_weight",
                       {{"service", s.name}, {"backend", b.name}}, b.effective_weight);
        }
    }
    out.family("fulcrum_backend_max_connections", "gauge",
               "The backend's max_connections, for backends that have one.");
    for (const ServiceSample& s : sample.services) {
        for (const BackendSample& b : s.backends) {
            if (b.max_connections == 0) continue;
            out.sample("fulcrum_backend_max_connections",
                       {{"service", s.name}, {"backend", b.name}},
                       static_cast<std::uint64_t>(b.max_connections));
        }
    }
    out.family("fulcrum_backend_session_duration_seconds", "histogram",
               "Duration of the sessions that held a connection to the backend, from accept "
               "to close.");
    for (const ServiceSample& s : sample.services) {
        for (const BackendSample& b : s.backends) {
            out.histogram("fulcrum_backend_session_duration_seconds",
                          {{"service", s.name}, {"backend", b.name}}, b.session_duration);
        }
    }
    out.family("fulcrum_backend_connect_duration_seconds", "histogram",
               "Time from starting a connect to the backend to its success.");
    for (const ServiceSample& s : sample.services) {
        for (const BackendSample& b : s.backends) {
            out.histogram("fulcrum_backend_connect_duration_seconds",
                          {{"service", s.name}, {"backend", b.name}}, b.connect_duration);
        }
    }
    out.family("fulcrum_backend_health_check_duration_seconds", "histogram",
               "Duration of active health probes, whatever their result.");
    for (const ServiceSample& s : sample.services) {
        for (const BackendSample& b : s.backends) {
            if (!b.check_duration) continue;
            out.histogram("fulcrum_backend_health_check_duration_seconds",
                          {{"service", s.name}, {"backend", b.name}}, *b.check_duration);
        }
    }
    render_check_history(out, sample.services);
    return out.take();
}

std::vector<ServiceSample> sample_services(const std::vector<ServiceState>& services) {
    std::vector<ServiceSample> samples;
    samples.reserve(services.size());
    for (const ServiceState& service : services) {
        ServiceSample& s = samples.emplace_back();
        s.name = service.config->name;
        service.counters->for_each([&s](const ServiceTraffic& t) {
            s.accepted += t.accepted.value();
            s.refused += t.refused.value();
            s.proxy_rejected += t.proxy_rejected.value();
            for (std::size_t i = 0; i < no_backend_count; ++i)
                s.no_backend[i] += t.no_backend[i].value();
            for (std::size_t i = 0; i < session_end_count; ++i) s.ended[i] += t.ended[i].value();
            s.sessions += t.sessions.value();
            for (std::size_t i = 0; i < rejection_count; ++i)
                s.rejected[i] += t.rejected[i].value();
            s.sni_routed += t.sni_routed.value();
        });
        s.queue_length = service.queue ? service.queue->length() : 0;
        s.tracked_sources = service.admission ? service.admission->tracked_sources() : 0;
        if (service.discovery) {
            const DiscoveryStats& stats = *service.discovery;
            DiscoverySample& discovery = s.discovery.emplace();
            discovery.etcd =
                service.config->discovery && service.config->discovery->type == DiscoveryType::etcd;
            for (std::size_t i = 0; i < resolution_result_count; ++i) {
                discovery.resolutions[i] = stats.resolutions[i].load(std::memory_order_relaxed);
            }
            discovery.backends = stats.backends.load(std::memory_order_relaxed);
            discovery.watch_up = stats.watch_up.load(std::memory_order_relaxed);
            discovery.events = stats.events.load(std::memory_order_relaxed);
            discovery.invalid_values = stats.invalid_values.load(std::memory_order_relaxed);
            discovery.revision = stats.revision.load(std::memory_order_relaxed);
        }
        for (const PoolMember& member : service.pool->members) {
            const Backend* backend = member.backend.get();
            BackendSample& b = s.backends.emplace_back();
            b.name = member.config.name;
            backend->traffic.for_each([&b](const BackendTraffic& t) {
                b.connections += t.connections.value();
                b.connect_failures += t.connect_failures.value();
                b.retries += t.retries.value();
                b.bytes_sent += t.bytes_sent.value();
                b.bytes_received += t.bytes_received.value();
                t.session_duration.add_to(b.session_duration);
                t.connect_duration.add_to(b.connect_duration);
            });
            b.active = static_cast<std::uint64_t>(
                std::max(0, backend->active.load(std::memory_order_relaxed)));
            b.healthy = backend->passes_checks();
            b.drained = backend->drained.load(std::memory_order_relaxed);
            b.effective_weight = member.effective_weight;
            b.max_connections = member.config.max_connections;
            if (service.config->health.enabled) {
                backend->check_duration.add_to(b.check_duration.emplace());
                const CheckHistory& history = backend->check_history;
                CheckHistorySample& checks = b.checks.emplace();
                checks.to_up = history.transitions(true);
                checks.to_down = history.transitions(false);
                for (std::size_t i = 0; i < check_failure_count; ++i) {
                    checks.failures[i] = history.failures(static_cast<CheckFailure>(i));
                }
                checks.last_change_seconds = history.last_change_seconds();
                checks.downtime_seconds = history.downtime_seconds(CheckHistory::Clock::now());
            }
        }
    }
    return samples;
}

ProcessStats read_process_stats() {
    ProcessStats stats;
    // /proc/self/stat: utime and stime are fields 14 and 15, after the parenthesised name
    // (which may hold spaces).
    if (std::ifstream stat("/proc/self/stat"); stat) {
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        if (const auto close = text.rfind(')'); close != std::string::npos) {
            std::istringstream fields(text.substr(close + 2));
            std::string field;
            unsigned long long utime = 0;
            unsigned long long stime = 0;
            for (int i = 3; i < 14 && fields >> field; ++i) {
            }
            if (fields >> utime >> stime) {
                stats.cpu_seconds =
                    static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
            }
        }
    }
    if (std::ifstream statm("/proc/self/statm"); statm) {
        std::uint64_t size = 0;
        std::uint64_t resident = 0;
        if (statm >> size >> resident) {
            stats.resident_bytes = resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
        }
    }
    stats.open_fds = count_open_fds();
    if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = limit.rlim_cur;
    return stats;
}

ListenSample sample_listen(const std::string& listen, const ListenCounters& counters) {
    ListenSample sample;
    sample.listen = listen;
    counters.for_each([&sample](const ListenTraffic& t) {
        for (std::size_t i = 0; i < preread_failure_count; ++i) {
            sample.preread_failures[i] += t.preread_failures[i].value();
        }
    });
    return sample;
}

void sample_splice(const WorkerCounters& counters, ProcessSample& process) {
    counters.for_each([&process](const WorkerTraffic& t) {
        process.accept_pauses += t.accept_pauses.value();
        process.splice_bytes += t.bytes.value();
        process.splice_transfers += t.transfers.value();
        process.splice_pool_exhausted += t.pool_exhausted.value();
        process.splice_pipes_in_use += t.pipes_in_use.value();
        process.splice_pipes_idle += t.pipes_idle.value();
    });
}

}  // namespace fulcrum
