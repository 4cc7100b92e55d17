#pragma once
// The accept loop of one service on one worker. Each worker opens its own socket with
// SO_REUSEPORT, so the kernel spreads new connections and no lock sits on the accept path.
// Accepting is done here rather than by uv_listen so that running out of descriptors
// pauses accepting (connections wait in the kernel's backlog) instead of libuv's
// accept-and-close, and so that the pause can be logged.

#include <uv.h>

#include <memory>

#include "fulcrum/address.hpp"
#include "fulcrum/backend.hpp"
#include "fulcrum/config.hpp"
#include "fulcrum/strategy.hpp"

namespace fulcrum {

class Worker;

class Listener {
public:
    // Binds and listens at once; throws std::runtime_error naming the address on failure.
    Listener(Worker& worker, std::shared_ptr<const ServiceConfig> service,
             std::shared_ptr<const Pool> pool, const Address& bind_address);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    Worker& worker() { return worker_; }
    const ServiceConfig& service() const { return *service_; }
    const std::shared_ptr<const Pool>& pool() const { return pool_; }
    Strategy& strategy() { return *strategy_; }
    // The address actually bound (the real port when the configured one was 0).
    const Address& bound_address() const { return bound_; }

    // Starts accepting on the worker's loop. Throws on failure, with the handles already
    // closing (the worker's loop finishes that).
    void start();
    // Stops accepting: the socket is closed, so new connects are refused. Idempotent.
    void close();
    // Out of descriptors: stop accepting for a moment (logged once per episode).
    void pause_accepting(int error);
    // A descriptor was freed: accept again now rather than when the pause ends.
    void resume_accepting();

private:
    static void on_readable(uv_poll_t* poll, int status, int events);
    static void on_resume(uv_timer_t* timer);
    void accept_pending();

    Worker& worker_;
    std::shared_ptr<const ServiceConfig> service_;
    std::shared_ptr<const Pool> pool_;
    std::unique_ptr<Strategy> strategy_;
    Address bound_;
    int fd_ = -1;  // the listening socket, owned here
    uv_poll_t poll_{};
    uv_timer_t resume_timer_{};
    bool handles_open_ = false;
    bool paused_ = false;
};

}  // namespace fulcrum
