#pragma once
// The accept loop of one service on one worker. Each worker opens its own socket with
// SO_REUSEPORT, so the kernel spreads new connections and no lock sits on the accept path.
// Accepting is done here rather than by uv_listen so that running out of descriptors
// pauses accepting (connections wait in the kernel's backlog) instead of libuv's
// accept-and-close, and so that the pause can be logged.

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>

#include "fulcrum/config/address.hpp"
#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/backend.hpp"
#include "fulcrum/lb/strategy.hpp"

namespace fulcrum {

class Worker;

// A bound, listening socket (SO_REUSEPORT) not yet handed to a loop.
struct ListeningSocket {
    int fd;
    Address bound;  // the address actually bound (the real port when 0 was asked for)
};

// Throws std::runtime_error naming the service, the address and the failing step.
ListeningSocket open_listening_socket(const Address& address, const std::string& service);

class Listener {
public:
    // Takes over `socket`; start() begins accepting on the worker's loop.
    Listener(Worker& worker, ServiceState service, ListeningSocket socket);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    Worker& worker() { return worker_; }
    const ServiceConfig& service() const { return *service_.config; }
    const std::shared_ptr<const Pool>& pool() const { return service_.pool; }
    // This worker's slot of the service's counters.
    ServiceTraffic& traffic() { return (*service_.counters)[worker_id_]; }
    Strategy& strategy() { return *strategy_; }

    // A reload: new connections use this configuration and pool; live sessions keep the
    // backends they have.
    void update(ServiceState service);
    // Sessions accepted here and still open: a closed listener is freed after the last.
    void session_opened() { ++sessions_; }
    void session_closed() { --sessions_; }
    // Closed, its handles' close callbacks run, and no session left.
    bool finished() const;

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
    static void on_closed(uv_handle_t* handle);
    void accept_pending();

    Worker& worker_;
    std::size_t worker_id_;
    ServiceState service_;
    std::unique_ptr<Strategy> strategy_;
    Address bound_;
    int fd_;  // the listening socket, owned here
    uv_poll_t poll_{};
    uv_timer_t resume_timer_{};
    bool handles_open_ = false;
    bool paused_ = false;
    int closing_handles_ = 0;
    std::size_t sessions_ = 0;
};

}  // namespace fulcrum
