#pragma once
// Wires fulcrum together: one backend pool per service, the worker threads with their
// listeners, health checks, the admin endpoint, and the main loop that handles signals:
// SIGINT/SIGTERM drain and exit (after runtime.shutdown_grace), SIGHUP reloads the
// configuration file, SIGUSR2 upgrades the binary (BinaryUpgrade). systemd hears of each
// step (SystemdNotifier).

#include <uv.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fulcrum/admin/admin.hpp"
#include "fulcrum/config/config.hpp"
#include "fulcrum/discovery/discovery.hpp"
#include "fulcrum/health/health.hpp"
#include "fulcrum/net/worker.hpp"
#include "fulcrum/stats/metrics.hpp"
#include "fulcrum/systemd_notifier.hpp"
#include "fulcrum/upgrade/binary_upgrade.hpp"
#include "fulcrum/upgrade/inherited_sockets.hpp"

namespace fulcrum {

class Server {
public:
    // `config_path` is re-read on SIGHUP; empty for the embedded default.
    // `log_level_override` (--log-level) wins over the file's log.level, reloads included.
    // `command` is what SIGUSR2 starts; `inherited`, what the process that started this one
    // handed over (an upgrade).
    Server(std::shared_ptr<const Config> config, std::string config_path,
           std::string log_level_override = {}, BinaryUpgrade::Command command = {},
           InheritedSockets inherited = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds every listener (throws std::runtime_error naming what failed), serves until
    // SIGINT or SIGTERM and the drain that follows, and returns the exit status.
    int run();

private:
    static void on_signal(uv_signal_t* handle, int signum);
    static void on_worker_stopped(uv_async_t* handle);
    // While a service has slow_start, and when the admin endpoint set a weight: rebuilds
    // the pools whose effective weights moved.
    static void on_ramp_tick(uv_timer_t* timer);
    static void on_weight_set(uv_async_t* handle);
    void refresh_weights();
    // The state of `service` (as configured) with the backends discovery has for it,
    // carried over from `old` (nullptr for a new service) as a reload does: backends keep
    // their identity by name, and those that left start their drain deadline.
    ServiceState next_state(const ServiceConfig& service, const ServiceState* old) const;
    // Discovery found a new set for `service`: publishes its new pool.
    void on_discovered(const std::string& service);
    // Every service's state, in configuration order.
    std::vector<ServiceState> states_in_order() const;
    // Hands `states` (configuration order) to every worker, and to the admin endpoint.
    void publish(const std::vector<ServiceState>& states);
    // The routes of every listen address of `config`, by listener_key, for one worker;
    // `states` are the services of `config`, in its order.
    std::vector<std::pair<std::string, std::shared_ptr<const ListenRoutes>>> listen_routes(
        const Config& config, const std::vector<ServiceState>& states) const;
    // Each listen address's counters, for the admin endpoint.
    std::vector<AdminState::ListenSample> listen_samples(const Config& config) const;
    // Moves to `next` by plan_reload's plan: opens the listeners it adds (all or nothing:
    // throws when one cannot bind), then hands the workers their changes. Returns the
    // plan's summary.
    std::string apply(std::shared_ptr<const Config> next);
    void reload();
    // SIGINT/SIGTERM: /healthz turns 503 at once; close_listeners() follows after
    // runtime.shutdown_grace.
    void stop();
    static void on_grace_over(uv_timer_t* timer);
    // Stops accepting and lets the open sessions finish (the drain).
    void close_listeners();
    // SIGUSR2: starts the new binary with every listening socket.
    void start_upgrade();
    // The new binary serves: this process drains, without closing the shared sockets.
    void on_upgrade_ready(pid_t pid);
    // "2 services, 17 sessions", for systemd's STATUS=.
    std::string status_text() const;

    std::shared_ptr<const Config> config_;
    std::string config_path_;
    std::string log_level_override_;
    uv_loop_t loop_{};
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    uv_signal_t sighup_{};
    uv_signal_t sigusr2_{};
    uv_async_t worker_stopped_{};
    uv_timer_t ramp_timer_{};
    uv_async_t weight_set_{};
    uv_timer_t grace_timer_{};
    std::unique_ptr<SystemdNotifier> notifier_;
    BinaryUpgrade upgrade_;
    InheritedSockets inherited_;  // until the first configuration has taken its sockets
    // The descriptors of every listening socket the workers own, by listener_key: what an
    // upgrade hands over. The workers close them; entries go when they are told to.
    std::map<std::string, std::vector<int>> listening_fds_;
    std::atomic<std::size_t> stopped_workers_{0};
    std::atomic<std::size_t> open_sessions_{0};
    bool stopping_ = false;
    std::map<std::string, ServiceState> services_;  // by name
    // By listener_key: kept for as long as the address is served.
    std::map<std::string, std::shared_ptr<ListenCounters>> listen_counters_;
    std::unique_ptr<HealthChecker> health_;
    std::unique_ptr<Discovery> discovery_;
    std::vector<std::unique_ptr<Worker>> workers_;
    WorkerCounters worker_counters_;      // one slot per worker
    AdminState admin_state_;              // what the admin endpoint reads
    std::unique_ptr<AdminServer> admin_;  // set when admin.listen is; stopped before the above
};

}  // namespace fulcrum
