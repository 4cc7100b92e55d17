#include "fulcrum/admin/admin.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fulcrum/admin/admin_http.hpp"
#include "fulcrum/admin/status_page.hpp"

namespace fulcrum {

namespace {

// Keys in the order written here, which reads better than sorted.
using json = nlohmann::ordered_json;

constexpr int listen_backlog = 64;

constexpr const char* json_type = "application/json";

void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(2) + "\n", json_type);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
    send_json(res, status, {{"error", message}});
}

// Compares in time independent of where the first difference is, so that response
// timing does not tell how much of a guessed token was right.
bool same_secret(std::string_view given, std::string_view expected) {
    if (given.size() != expected.size()) return false;
    unsigned char difference = 0;
    for (std::size_t i = 0; i < given.size(); ++i) {
        difference |= static_cast<unsigned char>(given[i] ^ expected[i]);
    }
    return difference == 0;
}

// "2024-05-01T12:00:00.123Z"
std::string utc_text(std::chrono::system_clock::time_point at) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(at);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count() % 1000;
    return fmt::format("{}.{:03}Z", text, millis);
}

double unix_seconds(std::chrono::system_clock::time_point at) {
    return std::chrono::duration<double>(at.time_since_epoch()).count();
}

json check_json(const std::optional<CheckRecord>& check) {
    if (!check) return nullptr;
    const std::chrono::duration<double> age = std::chrono::system_clock::now() - check->at;
    return {{"result", check->passed ? "passed" : "failed"},
            {"detail", check->detail},
            {"time", utc_text(check->at)},
            {"seconds_ago", age.count()},
            {"duration_seconds", std::chrono::duration<double>(check->duration).count()}};
}

// Transitions, failures by reason, the last change and the downtime, as the checks saw them.
json check_history_json(const CheckHistory& history) {
    const auto now = CheckHistory::Clock::now();
    json failures = json::object();
    for (std::size_t i = 0; i < check_failure_count; ++i) {
        const auto reason = static_cast<CheckFailure>(i);
        failures[std::string(to_string(reason))] = history.failures(reason);
    }
    return {{"transitions_up", history.transitions(true)},
            {"transitions_down", history.transitions(false)},
            {"seconds_since_last_change", unix_seconds(now) - history.last_change_seconds()},
            {"downtime_seconds", history.downtime_seconds(now)},
            {"failures", failures}};
}

// What an operator is shown first: "down", "drained", "full", "slow-start", "up".
std::string_view backend_state(const PoolMember& member, Duration slow_start) {
    const Backend& backend = *member.backend;
    if (backend.is_drained()) {
        return backend.active.load(std::memory_order_relaxed) > 0 ? "draining" : "drained";
    }
    if (!backend.passes_checks()) return "down";
    if (!backend.has_room(member.config.max_connections)) return "full";
    // Read live: the pool's weights follow the ramp a step behind.
    const std::int64_t up_since = backend.up_since_ms.load(std::memory_order_relaxed);
    if (slow_start_factor(slow_start, up_since, steady_now_ms()) < 1) return "slow-start";
    // A backup that could take traffic, but only does while no primary is routable.
    return member.config.backup ? "backup" : "up";
}

json backend_json(const PoolMember& member, const ServiceConfig& service) {
    const Duration slow_start = service.slow_start;
    const Backend& backend = *member.backend;
    const bool drained = backend.drained.load(std::memory_order_relaxed);
    json out = {
        {"name", member.config.name},
        {"address", member.config.address.text},
        {"source", to_string(member.config.source)},
        {"resolved", member.config.address.numeric()},
        {"weight", member.base_weight()},
        {"configured_weight", member.config.weight},
        // Live: the pool's copy follows a ramp step, or a weight just set, a moment later.
        {"effective_weight",
         member.base_weight() *
             slow_start_factor(slow_start, backend.up_since_ms.load(std::memory_order_relaxed),
                               steady_now_ms())},
        {"backup", member.config.backup},
        {"state", backend_state(member, slow_start)},
        {"health", backend.passes_checks() ? "up" : "down"},
        {"admin_state", drained ? "drained" : "enabled"},
        {"eligible", backend.eligible()},
        {"active_connections", backend.active.load(std::memory_order_relaxed)},
        {"last_check", check_json(backend.last_check())},
        {"last_failure", check_json(backend.last_failure())},
    };
    if (member.config.max_connections > 0) out["max_connections"] = member.config.max_connections;
    if (member.config.source == BackendSource::etcd) out["drain"] = member.config.drain;
    if (service.health.enabled) out["checks"] = check_history_json(backend.check_history);
    const std::int64_t out_until_ms = backend.out_until_ms.load(std::memory_order_relaxed);
    const std::int64_t now_ms = steady_now_ms();
    if (out_until_ms > now_ms) {
        out["passive_out_seconds"] = static_cast<double>(out_until_ms - now_ms) / 1000;
    }
    return out;
}

// A service's [service.discovery] and what its latest resolution gave.
json discovery_json(const DiscoveryConfig& discovery, const DiscoveryStats& stats) {
    const int last = stats.last_result.load(std::memory_order_relaxed);
    json last_resolution = nullptr;  // none yet
    if (last >= 0) {
        const std::chrono::duration<double> since_epoch(
            stats.last_seconds.load(std::memory_order_relaxed));
        const auto at = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch));
        last_resolution = {
            {"time", utc_text(at)},
            {"seconds_ago", unix_seconds(std::chrono::system_clock::now()) - since_epoch.count()},
            {"result", to_string(static_cast<ResolutionResult>(last))},
        };
    }
    if (discovery.type == DiscoveryType::etcd) {
        return {
            {"type", to_string(discovery.type)},
            {"endpoints", discovery.endpoints},
            {"prefix", discovery.prefix},
            {"backends", stats.backends.load(std::memory_order_relaxed)},
            {"watch_up", stats.watch_up.load(std::memory_order_relaxed)},
            {"events", stats.events.load(std::memory_order_relaxed)},
            {"invalid_values", stats.invalid_values.load(std::memory_order_relaxed)},
        };
    }
    return {
        {"type", to_string(discovery.type)},
        {"name", discovery.name},
        {"backends", stats.backends.load(std::memory_order_relaxed)},
        {"last_resolution", std::move(last_resolution)},
    };
}

json status_json(const AdminState& state) {
    const auto snapshot = state.snapshot();
    const ProcessSample process = state.process();
    json services = json::array();
    for (const ServiceState& service : snapshot->services) {
        json backends = json::array();
        for (const PoolMember& member : service.pool->members) {
            backends.push_back(backend_json(member, *service.config));
        }
        services.push_back({
            {"name", service.config->name},
            {"listen", service.config->listen.text},
            {"server_names", service.config->server_names},
            {"strategy", to_string(service.config->strategy)},
            {"on_failure", to_string(service.config->on_failure)},
            {"health_checks", service.config->health.enabled},
            {"health_check_type", to_string(service.config->health.type)},
            {"queue_length", service.queue->length()},
            {"backends", std::move(backends)},
        });
        if (service.config->discovery && service.discovery) {
            services.back()["discovery"] =
                discovery_json(*service.config->discovery, *service.discovery);
            if (service.config->discovery->type == DiscoveryType::etcd) {
                services.back()["revision"] =
                    service.discovery->revision.load(std::memory_order_relaxed);
            }
        }
    }
    return {
        {"version", FULCRUM_VERSION},
        {"uptime_seconds", process.uptime_seconds},
        {"shutting_down", state.shutting_down()},
        {"workers", process.workers},
        {"client_connections", process.client_connections},
        {"reloads", process.reloads},
        {"reload_failures", process.reload_failures},
        {"services", std::move(services)},
    };
}

// The method a path answers to ("GET", "POST"), or "" for no such endpoint.
std::string_view allowed_method(const std::string& path) {
    if (path == "/" || path == "/metrics" || path == "/status" || path == "/history" ||
        path == "/healthz") {
        return "GET";
    }
    // /backends/{service}/{backend}/{drain|enable|weight}, each name non-empty.
    constexpr std::string_view prefix = "/backends/";
    if (!path.starts_with(prefix)) return "";
    std::string_view rest = std::string_view(path).substr(prefix.size());
    for (int name = 0; name < 2; ++name) {
        const std::size_t slash = rest.find('/');
        if (slash == 0 || slash == std::string_view::npos) return "";
        rest.remove_prefix(slash + 1);
    }
    return rest == "drain" || rest == "enable" || rest == "weight" ? "POST" : "";
}

// The service and backend named by /backends/{service}/{backend}/..., or an error answer
// (404) and nullptr.
struct BackendTarget {
    std::shared_ptr<const AdminState::Snapshot> snapshot;  // keeps the two alive
    const ServiceState* service = nullptr;
    const PoolMember* member = nullptr;
};
BackendTarget find_target(const AdminState& state, const httplib::Request& req,
                          httplib::Response& res) {
    const std::string service_name = req.matches[1].str();
    const std::string backend_name = req.matches[2].str();
    BackendTarget target{state.snapshot()};
    for (const ServiceState& s : target.snapshot->services) {
        if (s.config->name == service_name) target.service = &s;
    }
    if (target.service == nullptr) {
        send_error(res, 404, fmt::format("unknown service '{}'", service_name));
        return target;
    }
    target.member = target.service->pool->find(backend_name);
    if (target.member == nullptr) {
        send_error(res, 404,
                   fmt::format("unknown backend '{}' in service '{}'", backend_name, service_name));
    }
    return target;
}

// POST /backends/{service}/{backend}/weight with {"weight": N}: until the next reload.
void set_weight(const AdminState& state, const httplib::Request& req, const std::string& body,
                httplib::Response& res) {
    const BackendTarget target = find_target(state, req, res);
    if (target.member == nullptr) return;
    constexpr int max_weight = 1'000'000;
    const json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("weight") ||
        !request["weight"].is_number_integer() || request["weight"].get<std::int64_t>() < 1 ||
        request["weight"].get<std::int64_t>() > max_weight) {
        send_error(
            res, 400,
            fmt::format("the body must be {{\"weight\": N}} with N from 1 to {}", max_weight));
        return;
    }
    const int weight = request["weight"].get<int>();
    const int before = target.member->backend->weight_override.exchange(weight);
    spdlog::warn("admin: {}: service {}: backend {}: weight {} (was {}) until the next reload",
                 req.remote_addr, target.service->config->name, target.member->config.name, weight,
                 before > 0 ? before : target.member->config.weight);
    state.weight_set();  // the main loop rebuilds the pool: new connections, every worker
    send_json(res, 200, backend_json(*target.member, *target.service->config));
}

// POST /backends/{service}/{backend}/{drain|enable}
void set_admin_state(const AdminState& state, const httplib::Request& req, httplib::Response& res) {
    const BackendTarget target = find_target(state, req, res);
    if (target.member == nullptr) return;
    const PoolMember* member = target.member;
    const std::string& service_name = target.service->config->name;
    const std::string& backend_name = member->config.name;
    const bool drain = req.matches[3].str() == "drain";
    const bool was_drained = member->backend->drained.exchange(drain);
    if (drain && !was_drained) member->backend->mark_leaving(steady_now_ms());
    if (!drain && was_drained && !member->backend->discovery_drained.load()) {
        member->backend->leaving_since_ms.store(0, std::memory_order_relaxed);
        member->backend->mark_up(steady_now_ms());  // slow start from here
    }
    const int active = member->backend->active.load(std::memory_order_relaxed);
    if (was_drained != drain) {
        spdlog::warn("admin: {}: service {}: backend {} {}", req.remote_addr, service_name,
                     backend_name,
                     drain ? fmt::format("drained: no new connections, {} open continue", active)
                           : std::string("enabled: takes new connections again"));
    }
    send_json(res, 200, backend_json(*member, *target.service->config));
}

}  // namespace

AdminState::AdminState(unsigned workers, const std::atomic<std::size_t>& open_sessions,
                       const WorkerCounters& splice)
    : started_(std::chrono::steady_clock::now()),
      start_time_seconds_(unix_seconds(std::chrono::system_clock::now())),
      workers_(workers),
      open_sessions_(open_sessions),
      splice_(splice) {}

void AdminState::publish(std::shared_ptr<const Config> config, std::vector<ServiceState> services,
                         std::vector<ListenSample> listens) {
    const auto previous = snapshot_.load();
    if (!previous || previous->config != config) {
        // A configuration applied (start or reload), not a pool rebuilt under the same one.
        last_applied_seconds_.store(unix_seconds(std::chrono::system_clock::now()));
    }
    snapshot_.store(std::make_shared<const Snapshot>(
        Snapshot{std::move(config), std::move(services), std::move(listens)}));
}

void AdminState::count_reload(bool applied) {
    (applied ? reloads_ : reload_failures_).fetch_add(1);
}

ProcessSample AdminState::process() const {
    ProcessSample process;
    process.uptime_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    process.start_time_seconds = start_time_seconds_;
    process.stats = read_process_stats();
    process.workers = workers_;
    if (const auto snapshot = snapshot_.load(); snapshot && snapshot->config) {
        process.max_connections = snapshot->config->runtime.max_connections;
    }
    process.last_reload_success_seconds = last_applied_seconds_.load();
    process.client_connections = open_sessions_.load(std::memory_order_relaxed);
    process.reloads = reloads_.load();
    process.reload_failures = reload_failures_.load();
    sample_splice(splice_, process);
    return process;
}

// AdminHttp's default limits: few threads (scrapes and orchestrator probes are rare, and
// each holds a thread only for one short request), and short deadlines, which also bound
// how long stop() waits for the requests in progress.
AdminServer::AdminServer(const Address& listen, const AdminState& state, int inherited)
    : state_(state), http_(std::make_unique<AdminHttp>(AdminHttp::Limits{})) {
    // httplib's default sets SO_REUSEPORT, which would let a second fulcrum share the
    // port silently; SO_REUSEADDR alone still allows a quick restart.
    http_->set_socket_options([](socket_t fd) {
        const int on = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    });
    add_routes();
    if (inherited >= 0) {
        http_->adopt_listening_socket(inherited);
        socklen_t length = sizeof bound_.storage;
        ::getsockname(inherited, reinterpret_cast<sockaddr*>(&bound_.storage), &length);
        bound_.text = listen.text;
        return;
    }

    const std::string ip = listen.ip();
    errno = 0;  // what the bind sets is what gets reported
    const int port = listen.port() == 0
                         ? http_->bind_to_any_port(ip)
                         : (http_->bind_to_port(ip, listen.port()) ? listen.port() : -1);
    if (port < 0 || !http_->raise_backlog(listen_backlog)) {
        const int error = errno;
        http_->close_unused_socket();
        throw std::runtime_error("admin: cannot listen on " + listen.text + ": " +
                                 (error != 0 ? std::strerror(error) : "bind failed"));
    }
    const bool v6 = listen.family() == AF_INET6;
    bound_ = parse_address((v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port));
    bound_.text = listen.text;
}

AdminServer::~AdminServer() {
    if (thread_.joinable()) {
        stop();
    } else {
        http_->close_unused_socket();
    }
}

void AdminServer::start() {
    sampler_ = std::thread([this] { sample_history(); });
    thread_ = std::thread([this] {
        if (!http_->listen_after_bind()) spdlog::error("admin: accept loop failed; endpoint down");
        loop_ended_.store(true);
    });
}

void AdminServer::stop() {
    if (!thread_.joinable()) return;
    if (!handed_over_) {
        // httplib's stop() is a no-op until the accept loop runs, which may not have begun.
        while (!http_->is_running() && !loop_ended_.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        http_->stop();
    }
    thread_.join();  // a loop whose socket was handed over ends at its next turn
    {
        std::lock_guard lock(sampler_mutex_);
        sampler_stop_ = true;
    }
    sampler_wake_.notify_all();
    sampler_.join();
}

int AdminServer::listening_socket() const {
    return http_->listening_socket();
}

void AdminServer::hand_over() {
    handed_over_ = true;
    http_->give_up_listening_socket();
}

void AdminServer::sample_history() {
    std::unique_lock lock(sampler_mutex_);
    auto next = std::chrono::steady_clock::now();
    while (!sampler_stop_) {
        const auto snapshot = state_.snapshot();
        history_.record(unix_seconds(std::chrono::system_clock::now()),
                        sample_services(snapshot->services));
        // On a fixed schedule, so points stay one second apart however long a sample took.
        next += std::chrono::seconds(1);
        sampler_wake_.wait_until(lock, next, [this] { return sampler_stop_; });
    }
}

void AdminServer::add_routes() {
    http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        const AdminConfig& admin = state_.snapshot()->config->admin;
        const std::string_view allowed = allowed_method(req.path);
        // The page holds no data when a token is set: its script asks for the token.
        const bool public_path =
            req.path == "/" || (req.path == "/healthz" && admin.healthz_public);
        if (!admin.token.empty() && !public_path &&
            !same_secret(req.get_header_value("Authorization"), "Bearer " + admin.token)) {
            res.set_header("WWW-Authenticate", "Bearer");
            send_error(res, 401, "missing or wrong bearer token (admin.token)");
            return httplib::Server::HandlerResponse::Handled;
        }
        if (allowed.empty()) {
            send_error(res, 404, fmt::format("{} {}: no such endpoint", req.method, req.path));
            return httplib::Server::HandlerResponse::Handled;
        }
        if (req.method != allowed && !(allowed == "GET" && req.method == "HEAD")) {
            res.set_header("Allow", std::string(allowed));
            send_error(res, 405, fmt::format("{} {}: use {}", req.method, req.path, allowed));
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors without a body of their own (unknown path, exception) still answer JSON.
    using ErrorHandler = httplib::Server::HandlerWithResponse;
    http_->set_error_handler(ErrorHandler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, res.status,
                   fmt::format("{} {}: {}", req.method, req.path,
                               res.status == 404 ? "no such endpoint" : "request failed"));
        return httplib::Server::HandlerResponse::Handled;
    }));
    http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
        spdlog::debug("admin: {} {} {} from {}", req.method, req.path, res.status, req.remote_addr);
    });

    http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        MetricsSample sample;
        sample.process = state_.process();
        const auto snapshot = state_.snapshot();
        sample.services = sample_services(snapshot->services);
        for (const AdminState::ListenSample& listen : snapshot->listens) {
            sample.listens.push_back(sample_listen(listen.listen, *listen.counters));
        }
        res.set_content(render_prometheus(sample), "text/plain; version=0.0.4; charset=utf-8");
    });
    http_->Get("/status", [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, status_json(state_));
    });
    http_->Get("/history", [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, 200, history_.to_json());
    });
    http_->Get("/", [this](const httplib::Request&, httplib::Response& res) {
        const bool token_set = !state_.snapshot()->config->admin.token.empty();
        const json status = token_set ? json() : status_json(state_);
        res.status = 200;
        // Nothing but this endpoint: no other origin for scripts, styles or requests.
        res.set_header("Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; "
                       "style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
        res.set_header("Cache-Control", "no-store");
        res.set_content(render_status_page(token_set ? nullptr : &status),
                        "text/html; charset=utf-8");
    });
    http_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
        const bool stopping = state_.shutting_down();
        res.status = stopping ? 503 : 200;
        res.set_content(stopping ? "shutting down\n" : "ok\n", "text/plain");
    });
    // The content-reader form, which reads a body only when there is one (at most
    // RequestLimits::max_body, announced by Content-Length).
    http_->Post(R"(/backends/([^/]+)/([^/]+)/weight)",
                [this](const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& read_body) {
                    std::string body;
                    read_body([&body](const char* data, std::size_t size) {
                        body.append(data, size);
                        return true;
                    });
                    set_weight(state_, req, body, res);
                });
    http_->Post(R"(/backends/([^/]+)/([^/]+)/(drain|enable))",
                [this](const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& read_body) {
                    if (req.has_header("Content-Length")) {
                        read_body([](const char*, std::size_t) { return true; });
                    }
                    set_admin_state(state_, req, res);
                });
}

}  // namespace fulcrum
