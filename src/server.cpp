#include "fulcrum/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "fulcrum/admin/admin.hpp"
#include "fulcrum/descriptor_limit.hpp"
#include "fulcrum/lb/backend.hpp"
#include "fulcrum/net/listener.hpp"
#include "fulcrum/reload_plan.hpp"

namespace fulcrum {

namespace {

void check(int rc, const char* what) {
    if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

unsigned worker_count(const RuntimeConfig& runtime) {
    if (runtime.workers > 0) return runtime.workers;
    return std::max(1u, std::thread::hardware_concurrency());
}

bool is_loopback(const Address& address) {
    if (address.family() == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    return address.family() == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
}

// Binds the admin endpoint when admin.listen is set (throws when it cannot), or takes the
// socket of `inherited` bound there.
std::unique_ptr<AdminServer> open_admin(const AdminConfig& admin, const AdminState& state,
                                        InheritedSockets& inherited) {
    if (!admin.listen) return nullptr;
    int handed_over = -1;
    for (const ListeningSocket& socket : inherited.take(admin_socket_key)) {
        if (admin.listen->port() == 0 || socket.bound.numeric() == admin.listen->numeric()) {
            handed_over = socket.fd;
        } else {
            ::close(socket.fd);  // admin.listen has moved
        }
    }
    auto server = std::make_unique<AdminServer>(*admin.listen, state, handed_over);
    spdlog::info("admin endpoint on http://{}/ (/metrics, /status, /healthz){}{}",
                 server->bound_address().numeric(),
                 admin.token.empty() ? "" : "; bearer token required",
                 handed_over >= 0 ? "; socket handed over" : "");
    if (admin.token.empty() && !is_loopback(*admin.listen)) {
        spdlog::warn(
            "admin endpoint on {} without admin.token: whoever reaches it can drain "
            "backends; set admin.token or listen on 127.0.0.1",
            admin.listen->text);
    }
    return server;
}

}  // namespace

Server::Server(std::shared_ptr<const Config> config, std::string config_path,
               std::string log_level_override, BinaryUpgrade::Command command,
               InheritedSockets inherited)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      log_level_override_(std::move(log_level_override)),
      upgrade_(&loop_, std::move(command), [this](pid_t pid) { on_upgrade_ready(pid); }),
      inherited_(std::move(inherited)),
      worker_counters_(worker_count(config_->runtime)),
      admin_state_(worker_count(config_->runtime), open_sessions_, worker_counters_) {
    check(uv_loop_init(&loop_), "uv_loop_init");
    health_ = std::make_unique<HealthChecker>(&loop_);
    discovery_ = std::make_unique<Discovery>(
        &loop_, [this](const std::string& service) { on_discovered(service); });
}

Server::~Server() {
    admin_.reset();    // joins its thread
    workers_.clear();  // joins the threads
    health_.reset();
    discovery_.reset();
    if (int rc = uv_loop_close(&loop_); rc < 0) {
        spdlog::error("main loop still has handles at exit: {}", uv_strerror(rc));
    }
}

int Server::run() {
    std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error code, not a signal

    check(uv_async_init(&loop_, &worker_stopped_, on_worker_stopped), "uv_async_init");
    worker_stopped_.data = this;
    const unsigned count = worker_count(config_->runtime);
    int signals_open = 0;
    try {
        // Before any listener is bound: whoever sees the port open may signal at once.
        for (auto* signal : {&sigint_, &sigterm_, &sighup_, &sigusr2_}) {
            check(uv_signal_init(&loop_, signal), "uv_signal_init");
            signal->data = this;
            ++signals_open;
        }
        check(uv_signal_start(&sigint_, on_signal, SIGINT), "uv_signal_start");
        check(uv_signal_start(&sigterm_, on_signal, SIGTERM), "uv_signal_start");
        check(uv_signal_start(&sighup_, on_signal, SIGHUP), "uv_signal_start");
        check(uv_signal_start(&sigusr2_, on_signal, SIGUSR2), "uv_signal_start");
        check(uv_timer_init(&loop_, &ramp_timer_), "uv_timer_init");
        ramp_timer_.data = this;
        check(uv_async_init(&loop_, &weight_set_, on_weight_set), "uv_async_init");
        weight_set_.data = this;
        check(uv_timer_init(&loop_, &grace_timer_), "uv_timer_init");
        grace_timer_.data = this;
        notifier_ = std::make_unique<SystemdNotifier>(&loop_, [this] { return status_text(); });
        admin_state_.on_weight_set([this] { uv_async_send(&weight_set_); });
        for (unsigned i = 0; i < count; ++i) {
            workers_.push_back(std::make_unique<Worker>(i, count, config_, open_sessions_,
                                                        worker_counters_[i], [this] {
                                                            stopped_workers_.fetch_add(1);
                                                            uv_async_send(&worker_stopped_);
                                                        }));
        }
        apply(std::exchange(config_, std::make_shared<const Config>()));
        admin_ = open_admin(config_->admin, admin_state_, inherited_);
        inherited_.close_untaken();
    } catch (...) {
        admin_.reset();
        health_->stop();
        discovery_->stop();
        workers_.clear();
        uv_signal_t* signals[] = {&sigint_, &sigterm_, &sighup_, &sigusr2_};
        for (int i = 0; i < signals_open; ++i) {
            uv_close(reinterpret_cast<uv_handle_t*>(signals[i]), nullptr);
        }
        for (uv_handle_t* handle : {reinterpret_cast<uv_handle_t*>(&ramp_timer_),
                                    reinterpret_cast<uv_handle_t*>(&weight_set_),
                                    reinterpret_cast<uv_handle_t*>(&grace_timer_)}) {
            if (handle->data != nullptr) uv_close(handle, nullptr);
        }
        if (notifier_) notifier_->close();
        admin_state_.on_weight_set(nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&worker_stopped_), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
        throw;
    }
    for (auto& worker : workers_) worker->start();
    if (admin_) admin_->start();
    spdlog::info("fulcrum {} running with {} worker{} (pid {})", FULCRUM_VERSION, count,
                 count == 1 ? "" : "s", getpid());
    notifier_->ready();  // every listener is bound: connections wait in its backlog
    inherited_.report_ready();

    uv_run(&loop_, UV_RUN_DEFAULT);
    admin_.reset();    // stops it and joins its thread
    workers_.clear();  // joins the threads
    spdlog::info("all sessions finished; exiting");
    return 0;
}

std::string Server::apply(std::shared_ptr<const Config> next) {
    ensure_descriptor_limit(descriptors_needed(*next, worker_count(next->runtime)));
    const ReloadPlan plan = plan_reload(*config_, *next);
    for (const std::string& setting : plan.need_restart) {
        spdlog::warn("reload: {} changes take effect at the next start", setting);
    }
    // Sockets first: a listener that cannot bind rejects the whole change.
    std::map<std::string, std::vector<ListeningSocket>> sockets;  // by key, one per worker
    try {
        for (const std::string& key : plan.bind) {
            const auto service =
                std::find_if(next->services.begin(), next->services.end(),
                             [&](const ServiceConfig& s) { return listener_key(s) == key; });
            // Sockets an upgrade handed over are used as they are, every one of them (one
            // closed would drop what is queued on it); a worker may get several.
            auto& opened = sockets[key];
            opened = inherited_.take(key);
            const char* origin = opened.empty() ? "" : "; sockets handed over";
            Address address = opened.empty() ? service->listen : opened.front().bound;
            while (opened.size() < workers_.size()) {
                opened.push_back(open_listening_socket(address, service->name, opened.empty()));
                // With port 0 the first worker's port is shared by the others.
                address = opened.back().bound;
            }
            if (service->server_names.empty()) {
                spdlog::info("service {} listening on {} ({} backends, {}){}", service->name,
                             address.numeric(), service->backends.size(),
                             to_string(service->strategy), origin);
                continue;
            }
            std::vector<std::string> names;  // the services of the address, by server name
            for (const ServiceConfig& s : next->services) {
                if (listener_key(s) == key) names.push_back(s.name);
            }
            spdlog::info("listening on {} for services {}, chosen by server name{}",
                         address.numeric(), fmt::join(names, ", "), origin);
        }
        discovery_->configure(next->services);
    } catch (...) {
        for (const auto& entry : sockets) {
            for (const ListeningSocket& socket : entry.second) ::close(socket.fd);
        }
        throw;
    }

    // A weight set through the admin endpoint lasts until this reload.
    for (const auto& [name, state] : services_) {
        for (const PoolMember& member : state.pool->members) member.backend->weight_override = 0;
    }
    // One snapshot per service, its pool built once and shared by every worker.
    std::map<std::string, ServiceState> next_services;
    std::vector<ServiceState> states;  // in configuration order
    for (const ServiceConfig& service : next->services) {
        const auto old = services_.find(service.name);
        ServiceState state = next_state(service, old != services_.end() ? &old->second : nullptr);
        next_services[service.name] = state;
        states.push_back(state);
    }
    for (const auto& [name, state] : services_) {
        if (next_services.contains(name)) continue;
        for (const PoolMember& member : state.pool->members) {
            member.backend->mark_leaving(steady_now_ms());
        }
    }

    // Counters of the addresses still served carry over; those of the others go.
    std::map<std::string, std::shared_ptr<ListenCounters>> listen_counters;
    for (const ServiceConfig& service : next->services) {
        const std::string key = listener_key(service);
        const auto old = listen_counters_.find(key);
        listen_counters.try_emplace(key, old != listen_counters_.end()
                                             ? old->second
                                             : std::make_shared<ListenCounters>(workers_.size()));
    }
    listen_counters_ = std::move(listen_counters);

    for (std::size_t i = 0; i < workers_.size(); ++i) {
        struct Work {
            std::string key;
            std::shared_ptr<const ListenRoutes> routes;
            std::vector<ListeningSocket> sockets;  // set for a new listener
        };
        std::vector<Work> work;
        for (auto& [key, routes] : listen_routes(*next, states)) {
            const auto opened = sockets.find(key);
            std::vector<ListeningSocket> mine;
            if (opened != sockets.end()) {
                for (std::size_t j = i; j < opened->second.size(); j += workers_.size()) {
                    mine.push_back(opened->second[j]);
                }
            }
            work.push_back({key, std::move(routes), std::move(mine)});
        }
        Worker* worker = workers_[i].get();
        worker->post([worker, next, retire = plan.retire, work = std::move(work)] {
            worker->set_config(next);
            for (const std::string& key : retire) worker->retire_listener(key);
            for (const Work& item : work) {
                if (item.sockets.empty()) worker->update_listener(item.key, item.routes);
                for (const ListeningSocket& socket : item.sockets) {
                    try {
                        worker->listen(item.key, item.routes, socket);
                    } catch (const std::exception& e) {
                        spdlog::error("{}", e.what());
                    }
                }
            }
        });
    }
    for (const std::string& key : plan.retire) listening_fds_.erase(key);
    for (const auto& [key, opened] : sockets) {
        auto& fds = listening_fds_[key];
        for (const ListeningSocket& socket : opened) fds.push_back(socket.fd);
    }

    services_ = std::move(next_services);
    health_->configure(states);
    admin_state_.publish(next, std::move(states), listen_samples(*next));
    config_ = std::move(next);
    const bool ramps = std::any_of(config_->services.begin(), config_->services.end(),
                                   [](const ServiceConfig& s) { return s.slow_start.count() > 0; });
    if (ramps) {
        // A twentieth of the shortest ramp: each step of slow_start_factor is seen.
        Duration shortest = Duration::max();
        for (const ServiceConfig& s : config_->services) {
            if (s.slow_start.count() > 0) shortest = std::min(shortest, s.slow_start);
        }
        const auto period =
            static_cast<std::uint64_t>(std::max<std::int64_t>(50, shortest.count() / 20));
        check(uv_timer_start(&ramp_timer_, on_ramp_tick, period, period), "uv_timer_start");
    } else {
        uv_timer_stop(&ramp_timer_);
    }
    return plan.summary;
}

ServiceState Server::next_state(const ServiceConfig& configured, const ServiceState* old) const {
    const ServiceConfig service =
        with_discovered_backends(configured, discovery_->backends(configured.name));
    ServiceState state;
    state.config = std::make_shared<const ServiceConfig>(service);
    state.pool = std::make_shared<const Pool>(service, old != nullptr ? old->pool.get() : nullptr,
                                              workers_.size());
    state.balancer = std::make_shared<Balancer>(state.pool, service.strategy);
    // A service keeps its counters and queue for as long as its name stays configured.
    state.counters =
        old != nullptr ? old->counters : std::make_shared<ServiceCounters>(workers_.size());
    state.queue = old != nullptr ? old->queue : std::make_shared<WaitQueue>();
    state.admission = std::make_shared<Admission>(service.limits,
                                                  old != nullptr ? old->admission.get() : nullptr);
    state.discovery = discovery_->stats(service.name);
    if (old != nullptr) {
        // Backends that left start their drain deadline; sessions on them continue.
        for (const PoolMember& member : old->pool->members) {
            if (state.pool->find(member.config.name) == nullptr) {
                member.backend->mark_leaving(steady_now_ms());
            }
        }
    }
    return state;
}

void Server::on_discovered(const std::string& name) {
    const auto state = services_.find(name);
    const auto configured = std::ranges::find(config_->services, name, &ServiceConfig::name);
    if (stopping_ || state == services_.end() || configured == config_->services.end()) return;
    state->second = next_state(*configured, &state->second);
    const std::vector<ServiceState> states = states_in_order();
    publish(states);
    health_->configure(states);
}

std::vector<ServiceState> Server::states_in_order() const {
    std::vector<ServiceState> states;
    for (const ServiceConfig& service : config_->services)
        states.push_back(services_.at(service.name));
    return states;
}

void Server::on_ramp_tick(uv_timer_t* timer) {
    static_cast<Server*>(timer->data)->refresh_weights();
}

void Server::on_weight_set(uv_async_t* handle) {
    static_cast<Server*>(handle->data)->refresh_weights();
}

void Server::refresh_weights() {
    const std::int64_t now = steady_now_ms();
    bool moved = false;
    for (auto& [name, state] : services_) {
        Pool pool = state.pool->reweighted(state.config->slow_start, now);
        if (std::ranges::equal(pool.members, state.pool->members, {}, &PoolMember::effective_weight,
                               &PoolMember::effective_weight)) {
            continue;
        }
        state.pool = std::make_shared<const Pool>(std::move(pool));
        state.balancer = std::make_shared<Balancer>(state.pool, state.config->strategy);
        moved = true;
    }
    if (!moved) return;
    publish(states_in_order());
}

std::vector<std::pair<std::string, std::shared_ptr<const ListenRoutes>>> Server::listen_routes(
    const Config& config, const std::vector<ServiceState>& states) const {
    std::vector<std::pair<std::string, std::shared_ptr<ListenRoutes>>> built;
    for (std::size_t i = 0; i < config.services.size(); ++i) {
        const ServiceConfig& service = config.services[i];
        const std::string key = listener_key(service);
        auto it = std::ranges::find(built, key, &decltype(built)::value_type::first);
        if (it == built.end()) {
            auto routes = std::make_shared<ListenRoutes>();
            routes->listen = service.listen.text;
            routes->counters = listen_counters_.at(key);
            if (!service.server_names.empty()) routes->router.emplace();
            built.emplace_back(key, std::move(routes));
            it = std::prev(built.end());
        }
        ListenRoutes& routes = *it->second;
        if (routes.router) {
            for (const std::string& name : service.server_names) {
                routes.router->add(name, routes.services.size());
            }
        }
        // A copy per worker, so that workers do not share the snapshots' reference counts.
        routes.services.push_back(std::make_shared<const ServiceState>(states[i]));
    }
    return {built.begin(), built.end()};
}

std::vector<AdminState::ListenSample> Server::listen_samples(const Config& config) const {
    std::vector<AdminState::ListenSample> samples;
    std::set<std::string> keys;
    for (const ServiceConfig& service : config.services) {
        const std::string key = listener_key(service);
        if (keys.insert(key).second)
            samples.push_back({service.listen.text, listen_counters_.at(key)});
    }
    return samples;
}

void Server::publish(const std::vector<ServiceState>& states) {
    for (auto& worker : workers_) {
        Worker* target = worker.get();
        target->post([target, routes = listen_routes(*config_, states)] {
            for (const auto& [key, listen] : routes) target->update_listener(key, listen);
        });
    }
    admin_state_.publish(config_, states, listen_samples(*config_));
}

void Server::reload() {
    if (config_path_.empty()) {
        spdlog::warn("SIGHUP: running the embedded default, there is no file to reload");
        return;
    }
    notifier_->reloading();
    try {
        Config loaded = load_config_file(config_path_);
        if (!log_level_override_.empty()) loaded.log.level = log_level_override_;
        auto next = std::make_shared<const Config>(std::move(loaded));
        const std::string summary = apply(next);
        spdlog::default_logger()->set_level(spdlog::level::from_str(config_->log.level));
        spdlog::info("reloaded {}: {}", config_path_, summary);
        admin_state_.count_reload(true);
        notifier_->ready();
        return;
    } catch (const ConfigError& e) {
        for (const std::string& line : e.errors()) spdlog::error("reload: {}", line);
    } catch (const std::exception& e) {
        spdlog::error("reload: {}", e.what());
    }
    spdlog::error("reload rejected: still running the previous configuration");
    admin_state_.count_reload(false);
    notifier_->ready();
}

void Server::stop() {
    stopping_ = true;
    upgrade_.stop_new_process();
    notifier_->stopping();
    admin_state_.begin_shutdown();  // /healthz answers 503 from now on
    const Duration grace = config_->runtime.shutdown_grace;
    if (grace.count() == 0) {
        close_listeners();
        return;
    }
    spdlog::info("shutdown_grace: /healthz answers 503, listeners close in {}",
                 format_duration(grace));
    const auto grace_ms = static_cast<std::uint64_t>(grace.count());
    if (int rc = uv_timer_start(&grace_timer_, on_grace_over, grace_ms, 0); rc < 0) {
        spdlog::error("shutdown_grace: uv_timer_start: {}; closing listeners now", uv_strerror(rc));
        close_listeners();
    }
}

void Server::on_grace_over(uv_timer_t* timer) {
    auto* self = static_cast<Server*>(timer->data);
    spdlog::info("shutdown_grace over: closing listeners, letting open sessions finish");
    self->close_listeners();
}

void Server::close_listeners() {
    listening_fds_.clear();  // the workers close them
    uv_timer_stop(&ramp_timer_);
    health_->stop();
    discovery_->stop();
    for (auto& worker : workers_) worker->request_stop();
}

std::string Server::status_text() const {
    const std::size_t services = services_.size();
    const std::size_t sessions = open_sessions_.load(std::memory_order_relaxed);
    return fmt::format("{} service{}, {} session{}", services, services == 1 ? "" : "s", sessions,
                       sessions == 1 ? "" : "s");
}

void Server::start_upgrade() {
    std::vector<BinaryUpgrade::HandedSocket> sockets;
    for (const auto& [key, fds] : listening_fds_) {
        for (int fd : fds) sockets.emplace_back(key, fd);
    }
    if (admin_) sockets.emplace_back(admin_socket_key, admin_->listening_socket());
    upgrade_.start(sockets);
}

void Server::on_upgrade_ready(pid_t pid) {
    if (stopping_) return;  // stopped while it started: it was told to stop too
    spdlog::info("upgrade: the new process (pid {}) serves; this one drains {} session{}", pid,
                 open_sessions_.load(), open_sessions_.load() == 1 ? "" : "s");
    notifier_->hand_over(pid);
    if (admin_) admin_->hand_over();
    stopping_ = true;
    admin_state_.begin_shutdown();
    close_listeners();
}

void Server::on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Server*>(handle->data);
    if (signum == SIGHUP) {
        if (!self->stopping_) self->reload();
        return;
    }
    if (signum == SIGUSR2) {
        if (self->stopping_) {
            spdlog::warn("SIGUSR2 while draining: no upgrade");
        } else {
            self->start_upgrade();
        }
        return;
    }
    if (self->stopping_) {
        spdlog::warn("second {}: exiting now", strsignal(signum));
        std::_Exit(1);
    }
    if (self->config_->runtime.shutdown_grace.count() == 0) {
        spdlog::info("{}: closing listeners, letting open sessions finish", strsignal(signum));
    } else {
        spdlog::info("{}: draining", strsignal(signum));
    }
    self->stop();
}

void Server::on_worker_stopped(uv_async_t* handle) {
    auto* self = static_cast<Server*>(handle->data);
    if (self->stopped_workers_.load() < self->workers_.size()) return;
    self->admin_state_.on_weight_set(nullptr);  // before its handle closes
    for (auto* h : {reinterpret_cast<uv_handle_t*>(&self->sigint_),
                    reinterpret_cast<uv_handle_t*>(&self->sigterm_),
                    reinterpret_cast<uv_handle_t*>(&self->sighup_),
                    reinterpret_cast<uv_handle_t*>(&self->sigusr2_),
                    reinterpret_cast<uv_handle_t*>(&self->ramp_timer_),
                    reinterpret_cast<uv_handle_t*>(&self->weight_set_),
                    reinterpret_cast<uv_handle_t*>(&self->grace_timer_),
                    reinterpret_cast<uv_handle_t*>(&self->worker_stopped_)}) {
        uv_close(h, nullptr);
    }
    self->notifier_->close();
    self->upgrade_.close();
}

}  // namespace fulcrum
