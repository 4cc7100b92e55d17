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
#include <stdexcept>
#include <thread>

#include "fulcrum/admin/admin.hpp"
#include "fulcrum/lb/backend.hpp"
#include "fulcrum/net/listener.hpp"

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

// Binds the admin endpoint when admin.listen is set (throws when it cannot).
std::unique_ptr<AdminServer> open_admin(const AdminConfig& admin, const AdminState& state) {
    if (!admin.listen) return nullptr;
    auto server = std::make_unique<AdminServer>(*admin.listen, state);
    spdlog::info("admin endpoint on http://{}/ (/metrics, /status, /healthz){}",
                 server->bound_address().numeric(),
                 admin.token.empty() ? "" : "; bearer token required");
    if (admin.token.empty() && !is_loopback(*admin.listen)) {
        spdlog::warn(
            "admin endpoint on {} without admin.token: whoever reaches it can drain "
            "backends; set admin.token or listen on 127.0.0.1",
            admin.listen->text);
    }
    return server;
}

// What a reload changes in one service's backends, e.g. "+b2 -b0 ~b1".
std::string backend_changes(const ServiceConfig& before, const ServiceConfig& after) {
    std::vector<std::string> changes;
    auto find = [](const ServiceConfig& s, const std::string& name) {
        return std::find_if(s.backends.begin(), s.backends.end(),
                            [&](const BackendConfig& b) { return b.name == name; });
    };
    for (const BackendConfig& b : after.backends) {
        const auto old = find(before, b.name);
        if (old == before.backends.end()) {
            changes.push_back("+" + b.name);
        } else if (!(*old == b)) {
            changes.push_back("~" + b.name);
        }
    }
    for (const BackendConfig& b : before.backends) {
        if (find(after, b.name) == after.backends.end()) changes.push_back("-" + b.name);
    }
    return fmt::format("{}", fmt::join(changes, " "));
}

}  // namespace

Server::Server(std::shared_ptr<const Config> config, std::string config_path)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      splice_counters_(worker_count(config_->runtime)),
      admin_state_(worker_count(config_->runtime), open_sessions_, splice_counters_) {
    check(uv_loop_init(&loop_), "uv_loop_init");
    health_ = std::make_unique<HealthChecker>(&loop_);
}

Server::~Server() {
    admin_.reset();    // joins its thread
    workers_.clear();  // joins the threads
    health_.reset();
    if (int rc = uv_loop_close(&loop_); rc < 0) {
        spdlog::error("main loop still has handles at exit: {}", uv_strerror(rc));
    }
}

int Server::run() {
    std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error code, not a signal

    check(uv_async_init(&loop_, &worker_stopped_, on_worker_stopped), "uv_async_init");
    worker_stopped_.data = this;
    const unsigned count = worker_count(config_->runtime);
    try {
        for (unsigned i = 0; i < count; ++i) {
            workers_.push_back(std::make_unique<Worker>(i, count, config_, open_sessions_,
                                                        splice_counters_[i], [this] {
                                                            stopped_workers_.fetch_add(1);
                                                            uv_async_send(&worker_stopped_);
                                                        }));
        }
        apply(config_);
        admin_ = open_admin(config_->admin, admin_state_);
    } catch (...) {
        admin_.reset();
        health_->stop();
        workers_.clear();
        uv_close(reinterpret_cast<uv_handle_t*>(&worker_stopped_), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
        throw;
    }
    for (auto* signal : {&sigint_, &sigterm_, &sighup_}) {
        check(uv_signal_init(&loop_, signal), "uv_signal_init");
        signal->data = this;
    }
    check(uv_signal_start(&sigint_, on_signal, SIGINT), "uv_signal_start");
    check(uv_signal_start(&sigterm_, on_signal, SIGTERM), "uv_signal_start");
    check(uv_signal_start(&sighup_, on_signal, SIGHUP), "uv_signal_start");
    for (auto& worker : workers_) worker->start();
    if (admin_) admin_->start();
    spdlog::info("fulcrum {} running with {} worker{} (pid {})", FULCRUM_VERSION, count,
                 count == 1 ? "" : "s", getpid());

    uv_run(&loop_, UV_RUN_DEFAULT);
    admin_.reset();    // stops it and joins its thread
    workers_.clear();  // joins the threads
    spdlog::info("all sessions finished; exiting");
    return 0;
}

std::string Server::apply(std::shared_ptr<const Config> next) {
    struct Change {
        ServiceState state;
        std::vector<ListeningSocket> sockets;  // one per worker when the listener is new
    };
    std::vector<Change> changes;
    std::vector<std::string> summary;
    try {
        for (const ServiceConfig& service : next->services) {
            const auto old = services_.find(service.name);
            const bool kept = old != services_.end() &&
                              old->second.config->listen.text == service.listen.text &&
                              old->second.config->listen.numeric() == service.listen.numeric();
            Change change;
            change.state.config = std::make_shared<const ServiceConfig>(service);
            change.state.pool = std::make_shared<const Pool>(
                service, old != services_.end() ? old->second.pool.get() : nullptr,
                workers_.size());
            // A service keeps its counters for as long as its name stays configured.
            change.state.counters = old != services_.end()
                                        ? old->second.counters
                                        : std::make_shared<ServiceCounters>(workers_.size());
            if (!kept) {
                Address address = service.listen;
                for (std::size_t i = 0; i < workers_.size(); ++i) {
                    change.sockets.push_back(open_listening_socket(address, service.name));
                    // With port 0 the first worker's port is shared by the others.
                    address = change.sockets.back().bound;
                }
                spdlog::info("service {} listening on {} ({} backends, {})", service.name,
                             address.numeric(), service.backends.size(),
                             to_string(service.strategy));
                summary.push_back(fmt::format("service {} added", service.name));
            } else if (!(*old->second.config == service)) {
                const std::string backends = backend_changes(*old->second.config, service);
                summary.push_back(fmt::format("service {} changed{}{}", service.name,
                                              backends.empty() ? "" : ": backends ", backends));
            }
            changes.push_back(std::move(change));
        }
    } catch (...) {
        for (Change& change : changes) {
            for (const ListeningSocket& socket : change.sockets) ::close(socket.fd);
        }
        throw;
    }

    std::vector<std::string> retired;
    for (const auto& [name, state] : services_) {
        const bool still_there = std::any_of(changes.begin(), changes.end(), [&](const Change& c) {
            return c.state.config->name == name && c.sockets.empty();
        });
        if (!still_there) retired.push_back(name);
        if (std::none_of(next->services.begin(), next->services.end(),
                         [&](const ServiceConfig& s) { return s.name == name; })) {
            summary.push_back(fmt::format("service {} removed", name));
        }
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        std::vector<std::pair<ServiceState, std::optional<ListeningSocket>>> work;
        for (const Change& change : changes) {
            std::optional<ListeningSocket> socket;
            if (!change.sockets.empty()) socket = change.sockets[i];
            work.emplace_back(change.state, socket);
        }
        Worker* worker = workers_[i].get();
        worker->post([worker, next, retired, work = std::move(work)] {
            worker->set_config(next);
            for (const std::string& name : retired) worker->retire_service(name);
            for (const auto& [state, socket] : work) {
                if (!socket) {
                    worker->update_service(state);
                    continue;
                }
                try {
                    worker->listen(state, *socket);
                } catch (const std::exception& e) {
                    spdlog::error("{}", e.what());
                }
            }
        });
    }

    std::vector<ServiceState> states;
    services_.clear();
    for (const Change& change : changes) {
        services_[change.state.config->name] = change.state;
        states.push_back(change.state);
    }
    health_->configure(states);
    admin_state_.publish(next, std::move(states));
    config_ = std::move(next);
    return summary.empty() ? "no changes" : fmt::format("{}", fmt::join(summary, "; "));
}

void Server::reload() {
    if (config_path_.empty()) {
        spdlog::warn("SIGHUP: running the embedded default, there is no file to reload");
        return;
    }
    std::shared_ptr<const Config> next;
    try {
        next = std::make_shared<const Config>(load_config_file(config_path_));
        if (next->runtime.workers != config_->runtime.workers) {
            spdlog::warn("reload: runtime.workers changes take effect at the next start");
        }
        if (next->admin.listen != config_->admin.listen) {
            spdlog::warn("reload: admin.listen changes take effect at the next start");
        }
        spdlog::default_logger()->set_level(spdlog::level::from_str(next->log.level));
        spdlog::info("reloaded {}: {}", config_path_, apply(next));
        admin_state_.count_reload(true);
        return;
    } catch (const ConfigError& e) {
        for (const std::string& line : e.errors()) spdlog::error("reload: {}", line);
    } catch (const std::exception& e) {
        spdlog::error("reload: {}", e.what());
    }
    spdlog::error("reload rejected: still running the previous configuration");
    admin_state_.count_reload(false);
}

void Server::stop() {
    stopping_ = true;
    admin_state_.begin_shutdown();  // /healthz answers 503 from now on
    health_->stop();
    for (auto& worker : workers_) worker->request_stop();
}

void Server::on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Server*>(handle->data);
    if (signum == SIGHUP) {
        if (!self->stopping_) self->reload();
        return;
    }
    if (self->stopping_) {
        spdlog::warn("second {}: exiting now", strsignal(signum));
        std::_Exit(1);
    }
    spdlog::info("{}: closing listeners, letting open sessions finish", strsignal(signum));
    self->stop();
}

void Server::on_worker_stopped(uv_async_t* handle) {
    auto* self = static_cast<Server*>(handle->data);
    if (self->stopped_workers_.load() < self->workers_.size()) return;
    for (auto* h : {reinterpret_cast<uv_handle_t*>(&self->sigint_),
                    reinterpret_cast<uv_handle_t*>(&self->sigterm_),
                    reinterpret_cast<uv_handle_t*>(&self->sighup_),
                    reinterpret_cast<uv_handle_t*>(&self->worker_stopped_)}) {
        uv_close(h, nullptr);
    }
}

}  // namespace fulcrum
