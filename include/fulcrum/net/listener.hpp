#pragma once
// The accept loop of one listen address on one worker: of its one service, or of the
// services that share it by server name (ListenRoutes). Each worker opens its own socket with
// SO_REUSEPORT, so the kernel spreads new connections and no lock sits on the accept path.
// Accepting is done here rather than by uv_listen so that running out of descriptors
// pauses accepting (connections wait in the kernel's backlog) instead of libuv's
// accept-and-close, and so that the pause can be logged.

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fulcrum/config/address.hpp"
#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/listen_routes.hpp"
#include "fulcrum/net/session.hpp"

namespace fulcrum {

class Worker;

// A bound, listening socket (SO_REUSEPORT) not yet handed to a loop.
struct ListeningSocket {
    int fd;
    Address bound;  // the address actually bound (the real port when 0 was asked for)
};

// Throws std::runtime_error naming the service, the address and the failing step.
// `exclusive`: first make sure no other socket listens on the address ("address in use"),
// since SO_REUSEPORT would let this one join a second fulcrum's silently and take half
// its connections. (Not for an address one of our own listeners serves.)
ListeningSocket open_listening_socket(const Address& address, const std::string& service,
                                      bool exclusive);

class Listener {
public:
    // Takes over `socket`; start() begins accepting on the worker's loop. `key`: which
    // listener of the configuration it is (listener_key).
    Listener(Worker& worker, std::string key, std::shared_ptr<const ListenRoutes> routes,
             ListeningSocket socket);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    const std::string& key() const { return key_; }
    // The current routes: a session still pre-reading is routed by these.
    const ListenRoutes& routes() const { return *routes_; }
    // The service by that name as currently configured here, if it still is.
    const ServiceConfig* current_service(const std::string& name) const;

    // A reload: new connections are accepted under these routes; live sessions keep
    // their service snapshot.
    void update(std::shared_ptr<const ListenRoutes> routes) { routes_ = std::move(routes); }
    // Closed, its handles' close callbacks run, and no session accepted here left: a
    // closed listener is freed after its last session.
    bool finished() const;

    // Starts accepting on the worker's loop. Throws on failure, with the handles already
    // closing (the worker's loop finishes that).
    void start();
    // Stops accepting: the socket is closed, so new connects are refused. Idempotent.
    void close();
    // A session accepted here is about to be freed; `held_backend`: it had a backend
    // connection (two descriptors free up).
    void session_closed(Session& session, bool held_backend);
    // Out of descriptors: stop accepting for a moment (logged once per episode).
    void pause_accepting(int error);

private:
    static void on_readable(uv_poll_t* poll, int status, int events);
    static void on_resume(uv_timer_t* timer);
    static void on_closed(uv_handle_t* handle);
    void accept_pending();
    // A descriptor was freed, or the pause ended: accept again.
    void resume_accepting();

    // "service web", or "listen 0.0.0.0:443" when routing by server name, for log lines.
    std::string label() const;

    Worker& worker_;
    std::string key_;
    std::shared_ptr<const ListenRoutes> routes_;
    Address bound_;
    int fd_;  // the listening socket, owned here
    uv_poll_t poll_{};
    uv_timer_t resume_timer_{};
    bool handles_open_ = false;
    bool paused_ = false;
    std::uint64_t pauses_ = 0;  // in the episode short of descriptors now, if any
    std::uint64_t pause_began_ms_ = 0;
    int closing_handles_ = 0;
    std::size_t sessions_ = 0;
};

}  // namespace fulcrum
