#pragma once
// One thread with its own libuv loop, its own listener per listen address and its own
// sessions.
// Other threads talk to it only through uv_async_send.

#include <uv.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/service_state.hpp"
#include "fulcrum/net/listener.hpp"
#include "fulcrum/net/worker_context.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

class Session;

class Worker {
public:
    // Creates the loop; add listeners with listen() before start(), or through post().
    // `workers` is how many there are: each takes its share of runtime.splice_pipes.
    Worker(unsigned id, unsigned workers, std::shared_ptr<const Config> config,
           std::atomic<std::size_t>& open_sessions, WorkerTraffic& splice,
           std::function<void()> on_stopped);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();
    // Thread-safe: runs `task` on this worker's loop thread, soon.
    void post(std::function<void()> task);
    // Thread-safe: stop accepting, let sessions finish, force-close them after
    // runtime.shutdown_timeout, then end the loop (on_stopped runs on this thread).
    void request_stop();
    void join();

    // On the worker's thread (or before start()): the listeners of a (re)configuration,
    // by listener_key. A key may have several sockets here: those an upgrade handed over
    // when the old process had more workers.
    void listen(const std::string& key, std::shared_ptr<const ListenRoutes> routes,
                ListeningSocket socket);
    void update_listener(const std::string& key, std::shared_ptr<const ListenRoutes> routes);
    // Stops accepting on `key`; its sessions run to their end.
    void retire_listener(const std::string& key);
    void set_config(std::shared_ptr<const Config> config);
    // Frees retired listeners that are closed and have no session left.
    void collect_retired();

    uv_loop_t* loop() { return &loop_; }
    unsigned id() const { return id_; }
    WorkerContext& context() { return *context_; }
    // The live sessions, for the shutdown timeout to close.
    void add(Session* session);
    void remove(Session* session);

private:
    static void on_async(uv_async_t* async);
    static void on_shutdown_timeout(uv_timer_t* timer);
    // Every second: closes sessions whose backend left drain_timeout ago.
    static void on_drain_check(uv_timer_t* timer);
    void begin_stop();
    void end_loop_if_idle();

    unsigned id_;
    std::shared_ptr<const Config> config_;
    std::atomic<std::size_t>& open_sessions_;
    std::function<void()> on_stopped_;
    uv_loop_t loop_{};
    uv_async_t async_{};
    uv_timer_t shutdown_timer_{};
    uv_timer_t drain_timer_{};
    std::mutex inbox_mutex_;
    std::vector<std::function<void()>> inbox_;  // tasks posted from other threads
    std::atomic<bool> stop_requested_{false};
    bool stopping_ = false;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Listener>> retired_;  // closed, waiting for their sessions
    std::unique_ptr<WorkerContext> context_;          // after loop_, which it points to
    Session* sessions_ = nullptr;                     // head of the intrusive list of live sessions
    std::size_t session_count_ = 0;
    std::thread thread_;
};

}  // namespace fulcrum
