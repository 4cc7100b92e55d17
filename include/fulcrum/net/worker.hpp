#pragma once
// One thread with its own libuv loop, its own listener per service and its own sessions.
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
#include "fulcrum/lb/backend.hpp"
#include "fulcrum/net/listener.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

class Session;

// Both ends of a pipe that carries a session's bytes from one socket to the other (splice).
struct Pipe {
    int read = -1;
    int write = -1;
};

class Worker {
public:
    // Size of the per-worker read buffer every session reads into; a session copies out
    // only what its peer could not take at once.
    static constexpr std::size_t scratch_size = 64 * 1024;

    // Creates the loop; add listeners with listen() before start(), or through post().
    // `workers` is how many there are: each takes its share of runtime.splice_pipes.
    Worker(unsigned id, unsigned workers, std::shared_ptr<const Config> config,
           std::atomic<std::size_t>& open_sessions, SpliceTraffic& splice,
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

    // On the worker's thread (or before start()): the listeners of a (re)configuration.
    void listen(ServiceState service, ListeningSocket socket);
    void update_service(ServiceState service);
    // Stops accepting for `name`; its sessions run to their end.
    void retire_service(const std::string& name);
    void set_config(std::shared_ptr<const Config> config) { config_ = std::move(config); }
    // Frees retired listeners that are closed and have no session left.
    void collect_retired();

    uv_loop_t* loop() { return &loop_; }
    const Config& config() const { return *config_; }
    unsigned id() const { return id_; }
    uv_buf_t scratch() { return uv_buf_init(scratch_.get(), scratch_size); }
    // A write in flight: its libuv request and up to scratch_size bytes a full peer could
    // not take yet. Only a stalled direction holds one, so an idle session holds none.
    struct WriteBlock {
        uv_write_t req;
        char data[scratch_size];
    };
    // Blocks that hold what a full peer could not take yet. Reused, so a
    // stalled stream does not cost an allocation per stall; freed past a small reserve.
    std::unique_ptr<WriteBlock> take_block();
    void give_block(std::unique_ptr<WriteBlock> block);

    // Pipes for splice, at most this worker's share of runtime.splice_pipes open at once
    // (each costs two descriptors). take_pipe gives nothing when splice is off or
    // disabled, or every pipe is in use; a pipe given back must be empty, one that may
    // hold bytes is dropped (closed).
    bool splice_enabled() const;
    std::optional<Pipe> take_pipe();
    void give_pipe(Pipe pipe);
    void drop_pipe(Pipe pipe);
    // The kernel refused splice (EINVAL, ENOSYS): this worker copies from now on.
    void disable_splice(int error);
    SpliceTraffic& splice_traffic() { return splice_; }

    // Counts a new session against runtime.max_connections; false when over the limit.
    bool admit();
    void add(Session* session);
    void remove(Session* session);

private:
    static void on_async(uv_async_t* async);
    Listener* find_listener(const std::string& name);
    static void on_shutdown_timeout(uv_timer_t* timer);
    void begin_stop();
    void end_loop_if_idle();
    std::size_t pipe_limit() const;
    void count_pipes();

    unsigned id_;
    unsigned workers_;
    std::shared_ptr<const Config> config_;
    std::atomic<std::size_t>& open_sessions_;
    std::function<void()> on_stopped_;
    uv_loop_t loop_{};
    uv_async_t async_{};
    uv_timer_t shutdown_timer_{};
    std::mutex inbox_mutex_;
    std::vector<std::function<void()>> inbox_;  // tasks posted from other threads
    std::atomic<bool> stop_requested_{false};
    bool stopping_ = false;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Listener>> retired_;  // closed, waiting for their sessions
    std::unique_ptr<char[]> scratch_;
    std::vector<std::unique_ptr<WriteBlock>> spare_blocks_;
    SpliceTraffic& splice_;
    std::vector<Pipe> spare_pipes_;
    std::size_t pipes_in_use_ = 0;
    bool splice_disabled_ = false;
    Session* sessions_ = nullptr;  // head of the intrusive list of live sessions
    std::size_t session_count_ = 0;
    std::thread thread_;
};

}  // namespace fulcrum
