#include "fulcrum/net/session.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "fulcrum/config/address.hpp"
#include "fulcrum/lb/balancer.hpp"
#include "fulcrum/logging.hpp"
#include "fulcrum/net/listener.hpp"
#include "fulcrum/proto/proxy_protocol.hpp"

namespace fulcrum {

namespace {

constexpr std::string_view bad_gateway_response =
    "HTTP/1.1 502 Bad Gateway\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 12\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Bad Gateway\n";

// How long a client that got no backend may take to finish sending before we close:
// closing with unread bytes would turn our FIN (or 502) into an RST the client may never read.
constexpr std::uint64_t drain_timeout_ms = 2000;

const ProxyHeaderParser proxy_header_parser;
const ClientHelloReader client_hello_reader;
}  // namespace

Session::Session(WorkerContext& worker, Listener& listener,
                 std::shared_ptr<const ServiceState> service)
    : listener_(listener),
      service_(std::move(service)),
      by_server_name_(service_ == nullptr),
      upstream_(&client_, &backend_),
      downstream_(&backend_, &client_),
      pump_(*this) {
    uv_loop_t* loop = worker.loop();
    // Neither init can fail on Linux: they only fill in the structs.
    uv_tcp_init(loop, &client_);
    uv_timer_init(loop, &timer_);
    client_.data = this;
    timer_.data = this;
    open_handles_ = 2;
    started_ms_ = last_activity_ms_ = uv_now(loop);
}

Session* Session::of(const void* handle_or_req) {
    // Every handle and request of a session carries it in `data`, which libuv never touches.
    return static_cast<Session*>(static_cast<const uv_handle_t*>(handle_or_req)->data);
}

void Session::start(int client_fd, const SocketAddress& peer) {
    if (int rc = uv_tcp_open(&client_, client_fd); rc < 0) {
        spdlog::warn("listen {}: cannot use accepted socket: {}", listener_.routes().listen,
                     uv_strerror(rc));
        ::close(client_fd);
        close(SessionEnd::refused);
        return;
    }
    peer_addr_ = client_addr_ = peer;
    if (!worker().admit()) {
        if (service_) {
            service_traffic().refused.add();
        } else {
            const ListenRoutes& routes = listener_.routes();
            (*routes.counters)[worker().id()]
                .preread_failures[static_cast<std::size_t>(PrereadFailure::refused)]
                .add();
        }
        close(SessionEnd::refused);
        return;
    }
    if (service_) enter_service();
    const ServiceConfig& settings = address_settings();
    if (settings.accept_proxy) {
        const auto& trusted = settings.proxy_trusted;
        if (!trusted.empty() && std::none_of(trusted.begin(), trusted.end(), [this](const Cidr& c) {
                return c.contains(peer_addr_.get());
            })) {
            reject_preread(PrereadFailure::proxy_header, "peer not in proxy_trusted");
            return;
        }
        start_preread(proxy_header_parser, settings.proxy_timeout);
    } else if (by_server_name_) {
        start_preread(client_hello_reader, settings.preread_timeout);
    } else {
        admit();
    }
}

void Session::enter_service() {
    ServiceTraffic& traffic = service_traffic();
    traffic.accepted.add();
    traffic.sessions.set(traffic.sessions.value() + 1);
    counted_open_ = true;
}

void Session::start_preread(const PrereadParser& parser, Duration timeout) {
    state_ = State::prereading;
    preread_ = std::make_unique<Preread>(parser);
    if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), on_alloc, on_read);
        rc < 0) {
        reject_preread(PrereadFailure::closed, uv_strerror(rc));
        return;
    }
    // Cannot fail: the timer is initialised and has a callback.
    uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
}

const ServiceConfig& Session::address_settings() const {
    return service_ ? config() : listener_.routes().address_settings();
}

bool Session::reading_client_hello() const {
    return &preread_->parser() == &client_hello_reader;
}

void Session::read_preread(ssize_t nread, const uv_buf_t* buf) {
    if (nread < 0) {
        reject_preread(PrereadFailure::closed, nread == UV_EOF
                                                   ? "connection closed before it was complete"
                                                   : uv_strerror(static_cast<int>(nread)));
        return;
    }
    preread_bytes({buf->base, static_cast<std::size_t>(nread)});
}

void Session::preread_bytes(std::string_view bytes) {
    PrereadFindings findings;
    const PrereadResult result = preread_->feed(bytes, findings);
    if (result.status == PrereadResult::Status::incomplete) return;
    if (result.status == PrereadResult::Status::invalid) {
        reject_preread(
            reading_client_hello() ? PrereadFailure::malformed : PrereadFailure::proxy_header,
            result.error);
        return;
    }
    if (findings.proxy && findings.proxy->has_addresses) {
        client_addr_.assign(reinterpret_cast<const sockaddr*>(&findings.proxy->source));
        destination_addr_.assign(reinterpret_cast<const sockaddr*>(&findings.proxy->destination));
    }
    // What is left are the client's first bytes: they go to the backend first (all of
    // them after a ClientHello, which consumes nothing).
    std::string rest = preread_->take_rest();
    if (findings.proxy && by_server_name_) {
        // The ClientHello follows the PROXY header; some of it may have come with it.
        preread_ = std::make_unique<Preread>(client_hello_reader);
        uv_timer_start(&timer_, on_timer,
                       static_cast<std::uint64_t>(address_settings().preread_timeout.count()), 0);
        preread_bytes(rest);
        return;
    }
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
    uv_timer_stop(&timer_);
    first_bytes_ = std::move(rest);
    preread_.reset();
    if (findings.client_hello && !route(*findings.client_hello)) return;
    admit();
}

bool Session::route(const ClientHello& hello) {
    const ListenRoutes& routes = listener_.routes();
    if (!hello.tls && routes.address_settings().sni_require_tls) {
        reject_preread(PrereadFailure::not_tls, "not a TLS ClientHello (sni_require_tls)");
        return false;
    }
    if (hello.server_name) server_name_ = *hello.server_name;
    const std::optional<std::size_t> target = routes.router->route(
        hello.server_name ? std::optional<std::string_view>(server_name_) : std::nullopt);
    if (!target) {
        reject_preread(PrereadFailure::no_match,
                       fmt::format("no service for server name {}",
                                   hello.server_name ? server_name_ : "(none)"));
        return false;
    }
    service_ = routes.services[*target];
    enter_service();
    service_traffic().sni_routed.add();
    return true;
}

void Session::reject_preread(PrereadFailure reason, std::string_view detail) {
    const ListenRoutes& routes = listener_.routes();
    (*routes.counters)[worker().id()].preread_failures[static_cast<std::size_t>(reason)].add();
    const bool proxy_phase =
        preread_ == nullptr ? reason == PrereadFailure::proxy_header : !reading_client_hello();
    if (proxy_phase) {
        // As before routing by name existed: a PROXY header problem is the upstream
        // balancer's, worth a warning.
        spdlog::warn("{} {}: peer {}: no valid {}: {}; closing", service_ ? "service" : "listen",
                     service_ ? config().name : routes.listen, peer_text(),
                     proxy_header_parser.what(), detail);
        if (service_) service_traffic().proxy_rejected.add();
        close(SessionEnd::bad_proxy_header);
        return;
    }
    // Scanners and broken clients: one line each only when debugging.
    spdlog::debug("listen {}: peer {}: {}: {}; closing", routes.listen, peer_text(),
                  to_string(reason), detail);
    close(SessionEnd::no_service);
}

void Session::abort(SessionEnd why) {
    close(why);
}

void Session::enforce_drain_deadline(std::int64_t now_ms) {
    if (member_ == nullptr || state_ == State::closing) return;
    // As the listener has the service now: a reload may have changed drain_timeout.
    const ServiceConfig* current = listener_.current_service(config().name);
    const std::optional<Duration> deadline =
        (current != nullptr ? *current : config()).drain_timeout;
    const std::int64_t since = member_->backend->leaving_since_ms.load(std::memory_order_relaxed);
    if (!deadline || since == 0 || now_ms - since < deadline->count()) return;
    spdlog::info("service {}: client {}: backend {} left {} ago (drain_timeout): closing",
                 config().name, client_text(), member_->config.name,
                 format_duration(Duration(now_ms - since)));
    close(SessionEnd::drain_timeout);
}

void Session::admit() {
    if (const std::optional<Rejection> rejection = service_->admission->admit(client_addr_.get())) {
        reject(*rejection);
        return;
    }
    admitted_ = true;
    connect_next();
}

void Session::reject(Rejection reason) {
    const ServiceConfig& service = config();
    service_traffic().rejected[static_cast<std::size_t>(reason)].add();
    if (service_->admission->opens_episode(reason, steady_now_ms())) {
        // One line per episode; /metrics counts every connection.
        spdlog::warn(
            "service {}: turning connections away: {} (first: client {}); "
            "fulcrum_rejected_connections_total counts them",
            service.name,
            reason == Rejection::per_source   ? "over a per-source limit"
            : reason == Rejection::rate       ? "over connection_rate"
            : reason == Rejection::queue_full ? "every backend full and the queue full"
                                              : "waited queue_timeout for a backend slot",
            client_text());
    }
    switch (reason) {
        case Rejection::queue_full:
            apply_on_failure("every backend is full and the queue is full", SessionEnd::queue_full);
            return;
        case Rejection::queue_timeout:
            apply_on_failure("no backend slot within queue_timeout", SessionEnd::queue_timeout);
            return;
        case Rejection::per_source:
        case Rejection::rate:
            // No backend was involved: closed at once, reset if on_failure resets.
            close(SessionEnd::limited, service.on_failure == OnFailure::reset ? &client_ : nullptr);
            return;
    }
}

// A session's place in its service's queue. The grant comes from whichever thread frees
// a slot; it is carried to the session's own thread, where `session` is read (nullptr
// once the session left the queue).
struct Session::Waiting final : WaitTicket {
    Waiting(Session* waiter, const WorkerContext& worker, std::shared_ptr<WaitQueue> queue)
        : session(waiter), context(worker), service_queue(std::move(queue)) {}

    void grant(const std::shared_ptr<WaitTicket>& self, std::shared_ptr<Backend> slot) override {
        context.post([self, slot = std::move(slot)]() mutable {
            auto* waiting = static_cast<Waiting*>(self.get());
            if (waiting->session != nullptr) {
                waiting->session->granted(std::move(slot));
            } else if (slot) {
                waiting->service_queue->release(slot);  // nobody to take it: pass it on
            }
        });
    }

    Session* session;
    const WorkerContext& context;
    const std::shared_ptr<WaitQueue> service_queue;
};

void Session::connect_next() {
    Pick pick;
    if (tried_.size() <= static_cast<std::size_t>(config().retries)) {
        pick = service_->balancer->pick(client_addr_.get(), tried_);
    } else {
        pick.reason = "retries exhausted";
    }
    if (pick.kind == Pick::Kind::wait) {
        wait_for_slot(false);
        return;
    }
    if (pick.kind != Pick::Kind::backend) {
        apply_on_failure(pick.reason,
                         tried_.empty() ? SessionEnd::no_backend : SessionEnd::connect_failed);
        return;
    }
    connect_to(*pick.member);
}

void Session::wait_for_slot(bool requeue) {
    const ServiceConfig& service = config();
    const std::uint64_t now = uv_now(worker().loop());
    if (!requeue) queued_since_ms_ = now;
    const auto limit = static_cast<std::uint64_t>(service.queue_timeout.count());
    const std::uint64_t waited = now - queued_since_ms_;
    if (limit == 0 || (requeue && waited >= limit)) {
        reject(limit == 0 ? Rejection::queue_full : Rejection::queue_timeout);
        return;
    }
    auto waiting = std::make_shared<Waiting>(this, worker(), service_->queue);
    Pick pick;
    const WaitQueue::Admission admission = service_->queue->enqueue(
        waiting, service.queue_max, requeue,
        [&] { return service_->balancer->pick(client_addr_.get(), tried_); }, pick);
    if (admission == WaitQueue::Admission::picked) {
        connect_to(*pick.member);
        return;
    }
    if (admission == WaitQueue::Admission::full) {
        reject(Rejection::queue_full);
        return;
    }
    waiting_ = std::move(waiting);
    state_ = State::queued;
    uv_timer_start(&timer_, on_timer, limit - waited, 0);
}

void Session::granted(std::shared_ptr<Backend> slot) {
    waiting_->session = nullptr;
    waiting_.reset();
    uv_timer_stop(&timer_);
    if (slot) {
        // The slot is of the service's backend by that name; this session's snapshot may
        // not have it (a reload in between), or it failed on it already: then pass it on.
        const PoolMember* member = service_->pool->find(slot->name);
        if (member != nullptr && member->backend == slot &&
            std::ranges::find(tried_, member) == tried_.end()) {
            connect_to(*member);
            return;
        }
        service_->queue->release(slot);
    }
    // Woken to look again (a slot came free where it could not be handed over).
    const Pick pick = service_->balancer->pick(client_addr_.get(), tried_);
    if (pick.kind == Pick::Kind::backend) {
        connect_to(*pick.member);
    } else if (pick.kind == Pick::Kind::wait) {
        wait_for_slot(true);
    } else {
        apply_on_failure(pick.reason,
                         tried_.empty() ? SessionEnd::no_backend : SessionEnd::connect_failed);
    }
}

void Session::leave_queue() {
    if (!waiting_) return;
    // Not found: its grant is on the way here, and passes the slot on (session unset).
    service_->queue->cancel(waiting_);
    waiting_->session = nullptr;
    waiting_.reset();
}

void Session::connect_to(const PoolMember& member) {
    member_ = &member;
    if (!tried_.empty()) traffic_of(*member_).retries.add();
    tried_.push_back(member_);
    attempt_errors_.push_back(nullptr);
    connect_started_ns_ = uv_hrtime();

    uv_tcp_init(worker().loop(), &backend_);
    backend_.data = this;
    backend_open_ = true;
    ++open_handles_;
    state_ = State::connecting;
    connect_req_.data = this;
    int rc = uv_tcp_connect(&connect_req_, &backend_, member_->config.address.sockaddr_ptr(),
                            on_connect);
    // Reading starts with the connect, so that one epoll_ctl registers both; libuv
    // reports the connect before any read.
    if (rc == 0) rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&backend_), on_alloc, on_read);
    if (rc < 0) {
        // A local failure (no descriptor, no memory): not the backend's fault, so no
        // failure is counted against it; out of descriptors also pauses accepting.
        if (rc == UV_EMFILE || rc == UV_ENFILE) listener_.pause_accepting(rc);
        attempt_failed(uv_err_name(rc));
        return;
    }
    uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(config().connect_timeout.count()),
                   0);
}

void Session::on_connect(uv_connect_t* req, int status) {
    Session* s = of(req);
    if (s->state_ != State::connecting) return;  // cancelled: timed out or closing
    if (status == 0) {
        s->established();
        return;
    }
    s->count_backend_failure();
    s->attempt_failed(uv_err_name(status));
}

void Session::count_backend_failure() {
    traffic_of(*member_).connect_failures.add();
    const ServiceConfig& service = config();
    if (service.passive.enabled &&
        member_->backend->record_connect_failure(steady_now_ms(), service.passive)) {
        spdlog::warn("service {}: backend {} taken out for {}: {} connect failures within {}",
                     service.name, member_->config.name, format_duration(service.passive.cooldown),
                     service.passive.max_failures, format_duration(service.passive.window));
    }
}

void Session::attempt_failed(const char* error) {
    spdlog::debug("service {}: client {}: connect to {} failed: {}", config().name, client_text(),
                  member_->config.name, error);
    attempt_errors_.back() = error;
    service_->queue->release(member_->backend);
    member_ = nullptr;
    uv_timer_stop(&timer_);
    state_ = State::retrying;  // on_closed starts the next attempt
    backend_open_ = false;
    close_handle(reinterpret_cast<uv_handle_t*>(&backend_));
}

void Session::established() {
    state_ = State::established;
    traffic_of(*member_).connections.add();
    traffic_of(*member_).connect_duration.observe(
        std::chrono::microseconds((uv_hrtime() - connect_started_ns_) / 1000));
    // Small writes go out at once. The client's socket has it from the listener.
    if (int rc = uv_tcp_nodelay(&backend_, 1); rc < 0) {
        spdlog::debug("service {}: TCP_NODELAY on the backend socket: {}", config().name,
                      uv_strerror(rc));
    }
    last_activity_ms_ = uv_now(worker().loop());
    if (!write_preamble()) {
        close(SessionEnd::backend_reset, &client_);
        return;
    }
    // The backend is read since the connect started; the client is read once the
    // preamble is written (write_done), as after any write.
    if (!upstream_.writing()) {
        if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), on_alloc, on_read);
            rc < 0) {
            spdlog::warn("service {}: cannot read from the client: {}", config().name,
                         uv_strerror(rc));
            close(SessionEnd::client_reset, &backend_);
            return;
        }
    }
    uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(config().idle_timeout.count()), 0);
}

bool Session::write_preamble() {
    const std::optional<ProxyVersion> version = member_->config.send_proxy;
    if (!version && first_bytes_.empty()) return true;
    std::string preamble;
    if (version) {
        if (destination_addr_.get()->sa_family == AF_UNSPEC) {
            int len = sizeof destination_addr_.storage;
            uv_tcp_getsockname(&client_, destination_addr_.get(), &len);
        }
        preamble = encode_proxy_header(*version, client_addr_.get(), destination_addr_.get());
    }
    // Client bytes, counted as the copy path counts them.
    upstream_.bytes += first_bytes_.size();
    traffic_of(*member_).bytes_sent.add(first_bytes_.size());
    preamble += first_bytes_;
    first_bytes_ = std::string();
    // Both parts are bounded (a pre-read phase's max_bytes each), far below a block.
    upstream_.pending = worker().take_block();
    std::memcpy(upstream_.pending->data, preamble.data(), preamble.size());
    return start_write(upstream_, uv_buf_init(upstream_.pending->data,
                                              static_cast<unsigned>(preamble.size()))) == 0;
}

void Session::apply_on_failure(std::string_view reason, SessionEnd end) {
    const ServiceConfig& service = config();
    // Queue rejections have their own episode line and counter.
    if (end != SessionEnd::queue_full && end != SessionEnd::queue_timeout) {
        spdlog::warn("service {}: client {}: no backend available, tried: {}: {}; on_failure={}",
                     service.name, client_text(),
                     tried_.empty() ? "none" : attempts_text(", ", true), reason,
                     to_string(service.on_failure));
    }
    state_ = State::failing;
    end_ = end;
    const NoBackend why = end == SessionEnd::queue_full      ? NoBackend::queue_full
                          : end == SessionEnd::queue_timeout ? NoBackend::queue_timeout
                          : end == SessionEnd::no_backend    ? NoBackend::no_eligible
                                                             : NoBackend::connect_failed;
    service_traffic().no_backend[static_cast<std::size_t>(why)].add();
    if (service.on_failure == OnFailure::reset) {
        close(end, &client_);
        return;
    }
    auto* client = reinterpret_cast<uv_stream_t*>(&client_);
    int rc = 0;
    if (service.on_failure == OnFailure::http_502) {
        // The response is a static constant: libuv may keep pointing at it until written.
        downstream_.pending = worker().take_block();
        rc = start_write(downstream_, uv_buf_init(const_cast<char*>(bad_gateway_response.data()),
                                                  bad_gateway_response.size()));
    }
    if (rc == 0) {
        shutdown_req_.data = this;
        rc = uv_shutdown(&shutdown_req_, client, on_shutdown);
    }
    if (rc == 0) rc = uv_read_start(client, on_alloc, on_read);
    if (rc < 0) {
        close(end);
        return;
    }
    uv_timer_start(&timer_, on_timer, drain_timeout_ms, 0);
}

void Session::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    Session* s = of(handle);
    *buf = s->worker().scratch();
    if (s->state_ == State::prereading) {
        buf->len = static_cast<decltype(buf->len)>(s->preread_->room());
    }
}

void Session::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    Session* s = of(stream);
    switch (s->state_) {
        case State::established:
            s->read(stream == reinterpret_cast<uv_stream_t*>(&s->client_) ? s->upstream_
                                                                          : s->downstream_,
                    nread, buf);
            return;
        case State::failing:
            // Draining a client that got no backend: discard until it is done.
            if (nread < 0) s->close(s->end_);
            return;
        case State::prereading:
            s->read_preread(nread, buf);
            return;
        default:
            return;
    }
}

void Session::read(Direction& d, ssize_t nread, const uv_buf_t* buf) {
    if (nread > 0) {
        count_read(d, static_cast<std::size_t>(nread));
        auto* sink = reinterpret_cast<uv_stream_t*>(d.sink);
        uv_buf_t chunk = uv_buf_init(buf->base, static_cast<unsigned>(nread));
        // A full buffer: a bulk transfer, which splice moves cheaper once nothing waits.
        d.bulk = static_cast<std::size_t>(nread) == WorkerContext::scratch_size;
        int written = uv_try_write(sink, &chunk, 1);
        if (written == nread) {
            if (d.bulk) pump_.start(index_of(d));
            return;
        }
        if (written < 0 && written != UV_EAGAIN) {
            close(failure_of(d.sink), d.source);
            return;
        }
        // The sink is full: keep the rest, stop reading the source until it is written.
        std::size_t rest = static_cast<std::size_t>(nread) - (written > 0 ? written : 0);
        d.pending = worker().take_block();
        std::memcpy(d.pending->data, buf->base + (nread - static_cast<ssize_t>(rest)), rest);
        if (start_write(d, uv_buf_init(d.pending->data, static_cast<unsigned>(rest))) < 0) {
            close(failure_of(d.sink), d.source);
            return;
        }
        uv_read_stop(reinterpret_cast<uv_stream_t*>(d.source));
        return;
    }
    if (nread == UV_EOF && !reset_pending(d.source)) {
        source_finished(d);
        if (!d.writing()) finish_direction(d);
        return;
    }
    if (nread < 0) close(failure_of(d.source), d.sink);  // a reset, or an error like one
}

bool Session::reset_pending(uv_tcp_t* side) {
    // libuv reports EOF on a hang-up that follows a short read without reading again, and
    // splice() reports it once the socket is done: a reset that came right behind the
    // last bytes would pass for a FIN. The socket's pending error tells them apart.
    uv_os_fd_t fd;
    int error = 0;
    socklen_t length = sizeof error;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(side), &fd) < 0 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) {
        return false;
    }
    return error != 0;
}

void Session::count_read(Direction& d, std::size_t n) {
    last_activity_ms_ = uv_now(worker().loop());
    d.bytes += n;
    // One relaxed store per read, in this worker's own slot.
    BackendTraffic& traffic = traffic_of(*member_);
    (&d == &upstream_ ? traffic.bytes_sent : traffic.bytes_received).add(n);
}

void Session::spliced(unsigned index, std::size_t bytes) {
    count_read(direction(index), bytes);
}

void Session::splice_delivered() {
    last_activity_ms_ = uv_now(worker().loop());
}

void Session::splice_source_finished(unsigned index) {
    Direction& d = direction(index);
    if (reset_pending(d.source)) {
        close(failure_of(d.source), d.sink);
        return;
    }
    source_finished(d);
    if (state_ == State::established) finish_direction(d);
}

void Session::splice_stopped(unsigned index) {
    Direction& d = direction(index);
    if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(d.source), on_alloc, on_read);
        rc < 0) {
        close(failure_of(d.source), d.sink);
    }
}

void Session::splice_failed(unsigned index, bool at_sink) {
    Direction& d = direction(index);
    if (at_sink) {
        close(failure_of(d.sink), d.source);
    } else {
        close(failure_of(d.source), d.sink);
    }
}

void Session::splice_handle_closed() {
    if (--open_handles_ == 0 && state_ == State::closing) destroy();
}

void Session::on_write(uv_write_t* req, int status) {
    Session* s = of(req);
    const bool upstream = s->upstream_.pending && req == &s->upstream_.pending->req;
    s->write_done(upstream ? s->upstream_ : s->downstream_, status);
}

void Session::write_done(Direction& d, int status) {
    if (d.pending) worker().give_block(std::move(d.pending));
    if (state_ == State::failing && status < 0) close(end_);
    if (state_ != State::established) return;  // failing, or cancelled by close
    if (status < 0) {
        close(failure_of(d.sink), d.source);
        return;
    }
    last_activity_ms_ = uv_now(worker().loop());
    if (d.eof) {
        finish_direction(d);
        return;
    }
    // A full read whose rest had to wait: the sink is the slower side of a bulk transfer.
    if (d.bulk && pump_.start(index_of(d))) return;
    if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(d.source), on_alloc, on_read);
        rc < 0) {
        close(failure_of(d.source), d.sink);
    }
}

void Session::source_finished(Direction& d) {
    // The first FIN names how the session ends, unless something ends it otherwise.
    if (!upstream_.eof && !downstream_.eof) {
        end_ = d.source == &client_ ? SessionEnd::client_fin : SessionEnd::backend_fin;
    }
    d.eof = true;
}

void Session::finish_direction(Direction& d) {
    if ((&d == &upstream_ ? downstream_ : upstream_).finished) {
        // Both sides sent FIN and got every byte: closing sends the last FIN by itself.
        close(end_);
        return;
    }
    // Nothing of d's is queued in libuv (only d writes to d.sink, and it is not writing),
    // so shutting down at once is what uv_shutdown would do a loop iteration later.
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(d.sink), &fd) < 0 || ::shutdown(fd, SHUT_WR) < 0) {
        close(failure_of(d.sink), d.source);
        return;
    }
    d.finished = true;
}

int Session::start_write(Direction& d, uv_buf_t chunk) {
    d.pending->req.data = this;
    int rc = uv_write(&d.pending->req, reinterpret_cast<uv_stream_t*>(d.sink), &chunk, 1, on_write);
    if (rc < 0) {
        worker().give_block(std::move(d.pending));
        return rc;
    }
    return 0;
}

void Session::on_shutdown(uv_shutdown_t* req, int status) {
    // Only on_failure's FIN to the client goes through libuv's shutdown.
    Session* s = of(req);
    if (s->state_ == State::failing && status < 0) s->close(s->end_);
}

void Session::on_timer(uv_timer_t* timer) {
    Session* s = of(timer);
    switch (s->state_) {
        case State::prereading: {
            const ServiceConfig& settings = s->address_settings();
            const bool hello = s->reading_client_hello();
            s->reject_preread(
                PrereadFailure::timeout,
                fmt::format(
                    "none within {} ({})", hello ? "preread_timeout" : "proxy_timeout",
                    format_duration(hello ? settings.preread_timeout : settings.proxy_timeout)));
            return;
        }
        case State::connecting:
            s->count_backend_failure();
            s->attempt_failed("timeout");
            return;
        case State::established: {
            // Reads only stamp last_activity_ms_; the one timer re-arms for what is left.
            auto idle_limit = static_cast<std::uint64_t>(s->config().idle_timeout.count());
            std::uint64_t idle = uv_now(s->worker().loop()) - s->last_activity_ms_;
            if (idle >= idle_limit) {
                s->close(SessionEnd::idle_timeout);
            } else {
                uv_timer_start(&s->timer_, on_timer, idle_limit - idle, 0);
            }
            return;
        }
        case State::queued:
            s->leave_queue();
            s->reject(Rejection::queue_timeout);
            return;
        case State::failing:
            s->close(s->end_);
            return;
        default:
            return;
    }
}

SessionEnd Session::failure_of(const uv_tcp_t* side) const {
    return side == &client_ ? SessionEnd::client_reset : SessionEnd::backend_reset;
}

void Session::close(SessionEnd why, uv_tcp_t* reset) {
    if (state_ == State::closing) return;
    leave_queue();
    state_ = State::closing;
    end_ = why;
    if (reset != nullptr && (reset == &client_ || backend_open_)) {
        // SO_LINGER 0 makes close() send an RST. Set by hand rather than with
        // uv_tcp_close_reset, which refuses a handle that has a shutdown pending.
        uv_os_fd_t fd;
        if (uv_fileno(reinterpret_cast<uv_handle_t*>(reset), &fd) == 0) {
            linger no_linger{1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof no_linger);
        }
    }
    pump_.close();
    close_handle(reinterpret_cast<uv_handle_t*>(&timer_));
    close_handle(reinterpret_cast<uv_handle_t*>(&client_));
    if (backend_open_) {
        backend_open_ = false;
        close_handle(reinterpret_cast<uv_handle_t*>(&backend_));
    }
}

void Session::close_handle(uv_handle_t* handle) {
    uv_close(handle, on_closed);
}

void Session::on_closed(uv_handle_t* handle) {
    Session* s = of(handle);
    --s->open_handles_;
    if (s->state_ == State::retrying && handle == reinterpret_cast<uv_handle_t*>(&s->backend_)) {
        s->connect_next();
        return;
    }
    if (s->state_ == State::closing && s->open_handles_ == 0) s->destroy();
}

std::string Session::attempts_text(std::string_view separator, bool log_style) const {
    std::string text;
    for (std::size_t i = 0; i < tried_.size(); ++i) {
        const char* error = attempt_errors_[i] != nullptr ? attempt_errors_[i] : "ok";
        text += i == 0 ? "" : separator;
        text += tried_[i]->config.name;
        text += log_style ? fmt::format(" ({})", error) : fmt::format(":{}", error);
    }
    return text;
}

void Session::destroy() {
    const std::uint64_t now = uv_now(worker().loop());
    if (service_) {
        ServiceTraffic& traffic = service_traffic();
        traffic.ended[static_cast<std::size_t>(end_)].add();
        if (counted_open_) traffic.sessions.set(traffic.sessions.value() - 1);
    }
    if (admitted_) service_->admission->release(client_addr_.get());
    if (member_ != nullptr) {
        service_->queue->release(member_->backend);
        traffic_of(*member_).session_duration.observe(std::chrono::milliseconds(now - started_ms_));
    }
    if (worker().access_log()) log_access_record(now);
    listener_.session_closed(*this, member_ != nullptr);  // may free the listener: its last use
    delete this;
}

void Session::log_access_record(std::uint64_t now) const {
    const std::string client = client_text();
    const std::string peer = address_settings().accept_proxy ? peer_text() : "";
    const std::string attempts = tried_.size() > 1 ? attempts_text(",", false) : "";
    std::array<LogField, 11> fields;
    std::size_t count = 0;
    auto add = [&](std::string_view key, std::variant<std::string_view, std::uint64_t> value) {
        fields[count++] = {key, value};
    };
    add("client", client);
    if (!peer.empty()) add("via", peer);
    add("service", service_ ? std::string_view(config().name) : "-");
    if (by_server_name_) add("sni", server_name_.empty() ? "-" : std::string_view(server_name_));
    add("backend", member_ != nullptr ? std::string_view(member_->config.name) : "-");
    add("bytes_in", upstream_.bytes);
    add("bytes_out", downstream_.bytes);
    add("duration_ms", now - started_ms_);
    add("end", to_string(end_));
    if (!attempts.empty()) add("attempts", attempts);
    log_access(std::span(fields.data(), count));
}

std::string Session::client_text() const {
    return format_sockaddr(client_addr_.get());
}

std::string Session::peer_text() const {
    return format_sockaddr(peer_addr_.get());
}

}  // namespace fulcrum
