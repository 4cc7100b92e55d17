#pragma once
// One proxied connection: a client socket, the backend socket fulcrum opened for it, and
// the bytes flowing between them. A Session owns its libuv handles and frees itself once,
// after the last of them has closed; nothing else deletes it. It runs under the service
// snapshot it was accepted with, or, on an address routed by server name, the one its
// ClientHello chose (a reload never changes it after that), and sees of its worker only
// the narrow WorkerContext.

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fulcrum/config/address.hpp"
#include "fulcrum/lb/service_state.hpp"
#include "fulcrum/net/splice_pump.hpp"
#include "fulcrum/net/worker_context.hpp"
#include "fulcrum/proto/preread.hpp"
#include "fulcrum/stats/session_end.hpp"

namespace fulcrum {

class Listener;

class Session final : private SpliceEvents {
public:
    // start() takes over the accepted socket. `listener`: where it was accepted; told
    // when the session ends and when descriptors run out (a direct call: session.cpp
    // includes listener.hpp, this header does not). `service`: nullptr when the
    // listener routes by server name, which chooses it.
    Session(WorkerContext& worker, Listener& listener, std::shared_ptr<const ServiceState> service);
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // `peer`: the address accept() returned for `client_fd`.
    void start(int client_fd, const SocketAddress& peer);
    // Ends the session now (shutdown timeout); no-op if it is already closing.
    void abort(SessionEnd why);
    // Closes the session if its backend was drained or removed its service's drain_timeout
    // ago or more (steady_now_ms clock).
    void enforce_drain_deadline(std::int64_t now_ms);

    // Intrusive list of the worker's live sessions (kept by the worker).
    Session* prev = nullptr;
    Session* next = nullptr;

private:
    // A session walks these states in order; `closing` can be entered from any of them.
    enum class State {
        prereading,   // a pre-read phase (PROXY header, ClientHello) reads the client
        queued,       // every backend is full: waits in the service's queue, client not read
        connecting,   // a connect to the picked backend is in flight; the client is not read
        retrying,     // a failed attempt's backend handle is closing; the next one starts after
        established,  // bytes flow both ways
        failing,      // no backend: on_failure's answer is written, the client drained to EOF
        closing,      // every handle is closing; the last close callback frees the session
    };

    // Bytes flowing from `source` to `sink`. On the copy path at most one write is in
    // flight per direction; while it is, `source` is not read, which is the backpressure.
    // On the splice path (pump_) the pump moves the bytes and reports back.
    struct Direction {
        Direction(uv_tcp_t* from, uv_tcp_t* to) : source(from), sink(to) {}
        uv_tcp_t* source;
        uv_tcp_t* sink;
        // The write in flight (its request and the unwritten rest of one read), if any.
        std::unique_ptr<WorkerContext::WriteBlock> pending;
        bool writing() const { return pending != nullptr; }
        bool bulk = false;      // the last copy read filled the scratch buffer
        bool eof = false;       // source sent FIN
        bool finished = false;  // FIN passed on to sink
        std::uint64_t bytes = 0;
    };

    static Session* of(const void* handle_or_req);
    static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_write(uv_write_t* req, int status);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_connect(uv_connect_t* req, int status);
    static void on_timer(uv_timer_t* timer);
    static void on_closed(uv_handle_t* handle);

    // Counts the session as its service's (accepted, open), once the service is known.
    void enter_service();
    void start_preread(const PrereadParser& parser, Duration timeout);
    void read_preread(ssize_t nread, const uv_buf_t* buf);
    // Runs the current phase over `bytes`; goes on to the next phase, or to admit().
    void preread_bytes(std::string_view bytes);
    // Chooses the service by `hello`'s server name; false when none takes it (closed).
    bool route(const ClientHello& hello);
    void reject_preread(PrereadFailure reason, std::string_view detail);
    bool reading_client_hello() const;
    struct Waiting;  // this session's ticket in the service's queue
    // After any pre-read: the service's limits, then the first connect.
    void admit();
    void reject(Rejection reason);
    // Picks a backend (another one after a failed connect) and connects to it, or waits.
    void connect_next();
    void connect_to(const PoolMember& member);
    // Every backend is full: queue (at the front for one that lost its turn), or fail.
    void wait_for_slot(bool requeue);
    // On this worker's thread: the queue's answer (a slot of `slot`, or pick again).
    void granted(std::shared_ptr<Backend> slot);
    void leave_queue();
    // A connect the backend refused or did not answer: counts towards passive detection.
    void count_backend_failure();
    void attempt_failed(const char* error);
    void established();
    // Writes what must reach the backend before the client's next bytes: the PROXY header
    // and the client bytes that came with the one it sent. False if the write failed.
    bool write_preamble();
    // Answers the client as on_failure says; `end` is what the access log will say.
    void apply_on_failure(std::string_view reason, SessionEnd end);
    // Every attempt with its outcome: "b0 (ECONNREFUSED), b1 (timeout)" for the warning
    // (log_style), "b0:ECONNREFUSED,b1:ok" for the access log's attempts=.
    std::string attempts_text(std::string_view separator, bool log_style) const;
    // The access-log line of the session ending at `now` (loop time, ms).
    void log_access_record(std::uint64_t now) const;
    void read(Direction& d, ssize_t nread, const uv_buf_t* buf);
    void write_done(Direction& d, int status);

    // Whether `side` has an error pending (a reset), though it reported EOF.
    static bool reset_pending(uv_tcp_t* side);
    // `d.source` sent FIN.
    void source_finished(Direction& d);
    // `d.source` sent FIN and every byte before it is written: passes the FIN on, or
    // closes the session when the other direction has already done so.
    void finish_direction(Direction& d);
    // Writes `chunk` (in or out of d.pending, which must be set) to d.sink.
    int start_write(Direction& d, uv_buf_t chunk);

    // Counts bytes read from `d.source`, either path.
    void count_read(Direction& d, std::size_t n);
    Direction& direction(unsigned index) {
        return index == upstream_direction ? upstream_ : downstream_;
    }
    unsigned index_of(const Direction& d) const {
        return &d == &upstream_ ? upstream_direction : downstream_direction;
    }
    // The worker this session runs on: its loop's `data` (no pointer kept per session).
    WorkerContext& worker() const { return *static_cast<WorkerContext*>(client_.loop->data); }

    // SpliceEvents
    void spliced(unsigned direction, std::size_t bytes) override;
    void splice_delivered() override;
    void splice_source_finished(unsigned direction) override;
    void splice_stopped(unsigned direction) override;
    void splice_failed(unsigned direction, bool at_sink) override;
    uv_tcp_t* splice_socket(unsigned side) override { return side == 0 ? &client_ : &backend_; }
    void splice_handle_opened() override { ++open_handles_; }
    void splice_handle_closed() override;

    // The one close path: closes every open handle (`reset` with an RST) and frees the
    // session when the last close callback has run.
    void close(SessionEnd why, uv_tcp_t* reset = nullptr);
    void close_handle(uv_handle_t* handle);
    void destroy();
    // The end to report when `side` failed; the reset then goes to the other side.
    SessionEnd failure_of(const uv_tcp_t* side) const;
    uv_tcp_t* other(const uv_tcp_t* side) { return side == &client_ ? &backend_ : &client_; }
    std::string client_text() const;
    std::string peer_text() const;
    // The session's service: set from the start, or once routed by server name.
    const ServiceConfig& config() const { return *service_->config; }
    // What the pre-read phases read (accept_proxy, proxy_*, preread_timeout,
    // sni_require_tls): the service's, or, before one is chosen, the listen address's.
    const ServiceConfig& address_settings() const;
    // This worker's slot of the service's and of the backend's counters.
    ServiceTraffic& service_traffic() { return (*service_->counters)[worker().id()]; }
    BackendTraffic& traffic_of(const PoolMember& member) {
        return member.backend->traffic[worker().id()];
    }

    Listener& listener_;
    std::shared_ptr<const ServiceState> service_;  // as of accept, or of routing; then fixed
    const bool by_server_name_;                    // accepted without a service: routed by SNI
    State state_ = State::connecting;
    uv_tcp_t client_{};
    uv_tcp_t backend_{};
    uv_timer_t timer_{};  // connect timeout, then idle timeout, then drain bound
    // on_failure's FIN to the client, after its 502 if any, comes when every connect is
    // over: the two requests share memory.
    union {
        uv_connect_t connect_req_{};
        uv_shutdown_t shutdown_req_;
    };
    Direction upstream_;    // client -> backend
    Direction downstream_;  // backend -> client
    SplicePump pump_;
    int open_handles_ = 0;
    bool backend_open_ = false;
    const PoolMember* member_ = nullptr;  // the backend picked; released once, when unset
    std::vector<const PoolMember*> tried_;
    // What each attempt of tried_ gave: an error name, "timeout", or nullptr (in flight,
    // or connected). Static strings: no allocation per attempt.
    std::vector<const char*> attempt_errors_;
    std::uint64_t connect_started_ns_ = 0;  // uv_hrtime of the connect in flight
    std::shared_ptr<Waiting> waiting_;      // while queued
    std::uint64_t queued_since_ms_ = 0;     // the first wait: queue_timeout counts from it
    bool admitted_ = false;
    bool counted_open_ = false;  // in its service's open-sessions gauge  // counted by the
                                 // service's per-source limits: release at the end
    SessionEnd end_ = SessionEnd::client_fin;
    std::uint64_t started_ms_ = 0;
    std::uint64_t last_activity_ms_ = 0;
    SocketAddress peer_addr_;           // the connected peer
    SocketAddress client_addr_;         // the client: the peer, or what its PROXY header says
    SocketAddress destination_addr_;    // what the PROXY header says the client connected to
    std::string server_name_;           // of the ClientHello, for the access log; empty: none
    std::unique_ptr<Preread> preread_;  // while a pre-read phase runs
    // The client bytes that came with a pre-read phase's, until the backend has them.
    // Empty (no allocation) the rest of the time.
    std::string first_bytes_;
};

}  // namespace fulcrum
