#pragma once
// The HTTP admin endpoint: cpp-httplib on its own thread, serving
//   GET  /metrics                              Prometheus text format 0.0.4
//   GET  /status                               services and backends as JSON
//   POST /backends/{service}/{backend}/drain   no new connections; live ones continue
//   POST /backends/{service}/{backend}/enable  undoes drain
//   POST /backends/{service}/{backend}/weight  {"weight": N} until the next reload
//   GET  /healthz                              200 while serving, 503 once shutdown began
//   GET  /history                              the last 15 minutes, a point per second
//   GET  /                                     the status page (status_page.hpp)
// With admin.token set, every request needs "Authorization: Bearer <token>".
// What a client may cost, token or not, is bounded by AdminHttp (admin_http.hpp).
// It reads shared state only (drain and enable store one atomic flag): nothing it does
// waits on, or makes wait, a worker.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fulcrum/admin/history.hpp"
#include "fulcrum/admin/prometheus.hpp"
#include "fulcrum/config/address.hpp"
#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/service_state.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

class AdminHttp;  // httplib's server, with access to its listening socket

// What the server publishes for the admin endpoint. The main thread publishes a new
// snapshot at start and after each reload; the admin thread reads whichever is current.
class AdminState {
public:
    // The counters of one listen address.
    struct ListenSample {
        std::string listen;  // as configured
        std::shared_ptr<const ListenCounters> counters;
    };
    // An immutable view of the running configuration.
    struct Snapshot {
        std::shared_ptr<const Config> config;
        std::vector<ServiceState> services;  // in configuration order
        std::vector<ListenSample> listens;
    };

    AdminState(unsigned workers, const std::atomic<std::size_t>& open_sessions,
               const WorkerCounters& splice);

    void publish(std::shared_ptr<const Config> config, std::vector<ServiceState> services,
                 std::vector<ListenSample> listens);
    std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(); }

    void count_reload(bool applied);
    // Called (from the admin thread) after a backend's weight was set: the owner rebuilds
    // the pools. Cleared (nullptr) before what it calls goes away.
    void on_weight_set(std::function<void()> notify) {
        std::lock_guard lock(weight_set_mutex_);
        weight_set_ = std::move(notify);
    }
    void weight_set() const {
        std::lock_guard lock(weight_set_mutex_);
        if (weight_set_) weight_set_();
    }
    void begin_shutdown() { shutting_down_.store(true); }
    bool shutting_down() const { return shutting_down_.load(); }
    // Uptime, descriptors, workers, open connections, reloads and splice use, as of now.
    ProcessSample process() const;

private:
    std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
    const std::chrono::steady_clock::time_point started_;
    const double start_time_seconds_;  // Unix time
    std::atomic<double> last_applied_seconds_{0};
    const unsigned workers_;
    const std::atomic<std::size_t>& open_sessions_;
    const WorkerCounters& splice_;
    std::atomic<std::uint64_t> reloads_{0};
    std::atomic<std::uint64_t> reload_failures_{0};
    std::atomic<bool> shutting_down_{false};
    mutable std::mutex weight_set_mutex_;
    std::function<void()> weight_set_;
};

class AdminServer {
public:
    // Binds `listen` (port 0: any free port), or serves on `inherited`, the listening
    // socket an upgrade handed over; throws std::runtime_error when it cannot.
    AdminServer(const Address& listen, const AdminState& state, int inherited = -1);
    // Stops and joins the thread if start() was called.
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Serves on a thread of its own (and a small pool of request threads).
    void start();
    // Stops accepting and waits until the requests in progress are answered.
    void stop();
    // The address bound, with the real port when 0 was asked for.
    const Address& bound_address() const { return bound_; }
    // A binary upgrade: the socket to hand over, then handing it over (the new process
    // accepts on it from then on, and this one answers the requests it has).
    int listening_socket() const;
    void hand_over();

private:
    void add_routes();
    // On the sampler thread: one History point per second until stop().
    void sample_history();

    const AdminState& state_;
    History history_;
    std::thread sampler_;
    std::mutex sampler_mutex_;
    std::condition_variable sampler_wake_;
    bool sampler_stop_ = false;
    std::unique_ptr<AdminHttp> http_;
    Address bound_;
    std::thread thread_;
    std::atomic<bool> loop_ended_{false};  // the accept loop returned
    bool handed_over_ = false;  // main thread
};

}  // namespace fulcrum
