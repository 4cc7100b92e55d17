#include "fulcrum/session.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "fulcrum/address.hpp"
#include "fulcrum/listener.hpp"
#include "fulcrum/proxy_protocol.hpp"
#include "fulcrum/worker.hpp"

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

// The most a PROXY header can take; reads during the header stop there, so a client's
// bytes beyond it stay in the kernel until the backend can take them.
constexpr std::size_t max_proxy_header = std::max(proxy_v1_max_header, proxy_v2_max_header);

}  // namespace

std::string_view to_string(SessionEnd end) {
    switch (end) {
        case SessionEnd::client_fin:
            return "client-fin";
        case SessionEnd::backend_fin:
            return "backend-fin";
        case SessionEnd::client_reset:
            return "client-reset";
        case SessionEnd::backend_reset:
            return "backend-reset";
        case SessionEnd::idle_timeout:
            return "idle-timeout";
        case SessionEnd::connect_failed:
            return "connect-failed";
        case SessionEnd::refused:
            return "refused";
        case SessionEnd::bad_proxy_header:
            return "bad-proxy-header";
        case SessionEnd::shutdown:
            return "shutdown";
    }
    return "unknown";
}

Session::Session(Listener& listener)
    : listener_(listener), upstream_(&client_, &backend_), downstream_(&backend_, &client_) {
    uv_loop_t* loop = listener_.worker().loop();
    // Neither init can fail on Linux: they only fill in the structs.
    uv_tcp_init(loop, &client_);
    uv_timer_init(loop, &timer_);
    client_.data = this;
    timer_.data = this;
    connect_req_.data = this;
    for (Direction* d : {&upstream_, &downstream_}) {
        d->write_req.data = this;
        d->shutdown_req.data = this;
    }
    open_handles_ = 2;
    started_ms_ = last_activity_ms_ = uv_now(loop);
    listener_.worker().add(this);
    listener_.session_opened();
}

Session* Session::of(const void* handle_or_req) {
    // Every handle and request of a session carries it in `data`, which libuv never touches.
    return static_cast<Session*>(static_cast<const uv_handle_t*>(handle_or_req)->data);
}

void Session::start(int client_fd, const SocketAddress& peer) {
    if (int rc = uv_tcp_open(&client_, client_fd); rc < 0) {
        spdlog::warn("service {}: cannot use accepted socket: {}", listener_.service().name,
                     uv_strerror(rc));
        ::close(client_fd);
        close(SessionEnd::refused);
        return;
    }
    peer_addr_ = client_addr_ = peer;
    if (!listener_.worker().admit()) {
        listener_.traffic().refused.add();
        close(SessionEnd::refused);
        return;
    }
    listener_.traffic().accepted.add();
    if (listener_.service().accept_proxy) {
        await_header();
    } else {
        connect_next();
    }
}

void Session::await_header() {
    const ServiceConfig& service = listener_.service();
    const auto& trusted = service.proxy_trusted;
    if (!trusted.empty() && std::none_of(trusted.begin(), trusted.end(), [this](const Cidr& c) {
            return c.contains(peer_addr_.get());
        })) {
        reject_header("peer not in proxy_trusted");
        return;
    }
    state_ = State::awaiting_header;
    if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), on_alloc, on_read);
        rc < 0) {
        reject_header(uv_strerror(rc));
        return;
    }
    uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(service.proxy_timeout.count()), 0);
}

void Session::read_header(ssize_t nread, const uv_buf_t* buf) {
    if (nread < 0) {
        reject_header(nread == UV_EOF ? "connection closed before a complete header"
                                      : uv_strerror(static_cast<int>(nread)));
        return;
    }
    header_buffer_.append(buf->base, static_cast<std::size_t>(nread));
    ProxyParse parse = parse_proxy_header(header_buffer_);
    if (parse.status == ProxyParse::Status::incomplete) return;
    if (parse.status == ProxyParse::Status::invalid) {
        reject_header(parse.error);
        return;
    }
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
    uv_timer_stop(&timer_);
    if (parse.header.has_addresses) {
        client_addr_.assign(reinterpret_cast<const sockaddr*>(&parse.header.source));
        destination_addr_.assign(reinterpret_cast<const sockaddr*>(&parse.header.destination));
    }
    // What is left are the client's first bytes: they go to the backend first.
    header_buffer_.erase(0, parse.length);
    if (header_buffer_.empty()) header_buffer_.shrink_to_fit();
    connect_next();
}

void Session::reject_header(std::string_view reason) {
    spdlog::warn("service {}: peer {}: no valid PROXY header: {}; closing",
                 listener_.service().name, peer_text(), reason);
    listener_.traffic().proxy_rejected.add();
    close(SessionEnd::bad_proxy_header);
}

void Session::abort(SessionEnd why) {
    close(why);
}

void Session::connect_next() {
    const ServiceConfig& service = listener_.service();
    Backend* backend = nullptr;
    if (tried_.size() <= static_cast<std::size_t>(service.retries)) {
        backend = listener_.strategy().pick(client_addr_.get(), tried_);
    }
    if (backend == nullptr) {
        apply_on_failure();
        return;
    }
    if (!tried_.empty()) traffic_of(*backend).retries.add();
    // The pool the strategy picked from, which a reload may have replaced since the
    // session started: holding it keeps `backend` alive as long as the session uses it.
    pool_ = listener_.pool();
    tried_.push_back(backend);
    backend_choice_ = backend;
    backend->active.fetch_add(1, std::memory_order_relaxed);

    uv_tcp_init(listener_.worker().loop(), &backend_);
    backend_.data = this;
    backend_open_ = true;
    ++open_handles_;
    state_ = State::connecting;
    int rc = uv_tcp_connect(&connect_req_, &backend_, backend->config.address.sockaddr_ptr(),
                            on_connect);
    if (rc < 0) {
        // A local failure (no descriptor, no memory): not the backend's fault, so no
        // failure is counted against it; out of descriptors also pauses accepting.
        if (rc == UV_EMFILE || rc == UV_ENFILE) listener_.pause_accepting(rc);
        attempt_failed(uv_err_name(rc));
        return;
    }
    uv_timer_start(&timer_, on_timer, static_cast<std::uint64_t>(service.connect_timeout.count()),
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
    Backend& backend = *backend_choice_;
    traffic_of(backend).connect_failures.add();
    const ServiceConfig& service = listener_.service();
    if (service.passive.enabled &&
        backend.record_connect_failure(steady_now_ms(), service.passive)) {
        spdlog::warn("service {}: backend {} taken out for {}: {} connect failures within {}",
                     service.name, backend.config.name, format_duration(service.passive.cooldown),
                     service.passive.max_failures, format_duration(service.passive.window));
    }
}

void Session::attempt_failed(std::string error) {
    spdlog::debug("service {}: client {}: connect to {} failed: {}", listener_.service().name,
                  client_text(), backend_choice_->config.name, error);
    if (!attempt_errors_.empty()) attempt_errors_ += ", ";
    attempt_errors_ += backend_choice_->config.name + " (" + error + ")";
    backend_choice_->active.fetch_sub(1, std::memory_order_relaxed);
    backend_choice_ = nullptr;
    uv_timer_stop(&timer_);
    state_ = State::retrying;  // on_closed starts the next attempt
    backend_open_ = false;
    close_handle(reinterpret_cast<uv_handle_t*>(&backend_));
}

void Session::established() {
    state_ = State::established;
    traffic_of(*backend_choice_).connections.add();
    // Small writes go out at once. The client's socket has it from the listener.
    if (int rc = uv_tcp_nodelay(&backend_, 1); rc < 0) {
        spdlog::debug("service {}: TCP_NODELAY on the backend socket: {}", listener_.service().name,
                      uv_strerror(rc));
    }
    last_activity_ms_ = uv_now(listener_.worker().loop());
    if (!write_preamble()) {
        close(SessionEnd::backend_reset, &client_);
        return;
    }
    for (uv_tcp_t* side : {&client_, &backend_}) {
        // The client is read once the preamble is written (write_done), as after any write.
        if (side == &client_ && upstream_.writing) continue;
        if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(side), on_alloc, on_read);
            rc < 0) {
            spdlog::warn("service {}: cannot read from {}: {}", listener_.service().name,
                         side == &client_ ? "client" : "backend", uv_strerror(rc));
            close(failure_of(side), other(side));
            return;
        }
    }
    uv_timer_start(&timer_, on_timer,
                   static_cast<std::uint64_t>(listener_.service().idle_timeout.count()), 0);
}

bool Session::write_preamble() {
    const std::optional<ProxyVersion> version = backend_choice_->config.send_proxy;
    if (!version && header_buffer_.empty()) return true;
    std::string preamble;
    if (version) {
        if (destination_addr_.get()->sa_family == AF_UNSPEC) {
            int len = sizeof destination_addr_.storage;
            uv_tcp_getsockname(&client_, destination_addr_.get(), &len);
        }
        preamble = encode_proxy_header(*version, client_addr_.get(), destination_addr_.get());
    }
    // Client bytes, counted as the copy path counts them.
    upstream_.bytes += header_buffer_.size();
    traffic_of(*backend_choice_).bytes_sent.add(header_buffer_.size());
    preamble += header_buffer_;
    header_buffer_ = std::string();
    // Both parts are bounded (max_proxy_header each), far below a block.
    upstream_.pending = listener_.worker().take_block();
    std::memcpy(upstream_.pending.get(), preamble.data(), preamble.size());
    uv_buf_t chunk = uv_buf_init(upstream_.pending.get(), static_cast<unsigned>(preamble.size()));
    if (uv_write(&upstream_.write_req, reinterpret_cast<uv_stream_t*>(&backend_), &chunk, 1,
                 on_write) < 0) {
        listener_.worker().give_block(std::move(upstream_.pending));
        return false;
    }
    upstream_.writing = true;
    return true;
}

void Session::apply_on_failure() {
    const ServiceConfig& service = listener_.service();
    spdlog::warn("service {}: client {}: no backend available, tried: {}; on_failure={}",
                 service.name, client_text(),
                 attempt_errors_.empty() ? "none eligible" : attempt_errors_,
                 to_string(service.on_failure));
    state_ = State::failing;
    listener_.traffic().no_backend[static_cast<std::size_t>(service.on_failure)].add();
    if (service.on_failure == OnFailure::reset) {
        close(SessionEnd::connect_failed, &client_);
        return;
    }
    auto* client = reinterpret_cast<uv_stream_t*>(&client_);
    int rc = 0;
    if (service.on_failure == OnFailure::http_502) {
        // The response is a static constant: libuv may keep pointing at it until written.
        uv_buf_t response = uv_buf_init(const_cast<char*>(bad_gateway_response.data()),
                                        bad_gateway_response.size());
        rc = uv_write(&downstream_.write_req, client, &response, 1, on_write);
    }
    if (rc == 0) rc = uv_shutdown(&downstream_.shutdown_req, client, on_shutdown);
    if (rc == 0) rc = uv_read_start(client, on_alloc, on_read);
    if (rc < 0) {
        close(SessionEnd::connect_failed);
        return;
    }
    uv_timer_start(&timer_, on_timer, drain_timeout_ms, 0);
}

void Session::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    Session* s = of(handle);
    *buf = s->listener_.worker().scratch();
    if (s->state_ == State::awaiting_header) {
        buf->len = static_cast<decltype(buf->len)>(max_proxy_header - s->header_buffer_.size());
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
            if (nread < 0) s->close(SessionEnd::connect_failed);
            return;
        case State::awaiting_header:
            s->read_header(nread, buf);
            return;
        default:
            return;
    }
}

void Session::read(Direction& d, ssize_t nread, const uv_buf_t* buf) {
    if (nread > 0) {
        last_activity_ms_ = uv_now(listener_.worker().loop());
        d.bytes += static_cast<std::uint64_t>(nread);
        // One relaxed store per read, in this worker's own slot.
        BackendTraffic& traffic = traffic_of(*backend_choice_);
        (&d == &upstream_ ? traffic.bytes_sent : traffic.bytes_received)
            .add(static_cast<std::uint64_t>(nread));
        auto* sink = reinterpret_cast<uv_stream_t*>(d.sink);
        uv_buf_t chunk = uv_buf_init(buf->base, static_cast<unsigned>(nread));
        int written = uv_try_write(sink, &chunk, 1);
        if (written == nread) return;
        if (written < 0 && written != UV_EAGAIN) {
            close(failure_of(d.sink), d.source);
            return;
        }
        // The sink is full: keep the rest, stop reading the source until it is written.
        std::size_t rest = static_cast<std::size_t>(nread) - (written > 0 ? written : 0);
        d.pending = listener_.worker().take_block();
        std::memcpy(d.pending.get(), buf->base + (nread - static_cast<ssize_t>(rest)), rest);
        chunk = uv_buf_init(d.pending.get(), static_cast<unsigned>(rest));
        if (int rc = uv_write(&d.write_req, sink, &chunk, 1, on_write); rc < 0) {
            close(failure_of(d.sink), d.source);
            return;
        }
        d.writing = true;
        uv_read_stop(reinterpret_cast<uv_stream_t*>(d.source));
        return;
    }
    if (nread == UV_EOF) {
        d.eof = true;
        if (!first_fin_seen_) {
            first_fin_seen_ = true;
            end_ = d.source == &client_ ? SessionEnd::client_fin : SessionEnd::backend_fin;
        }
        if (!d.writing) finish_direction(d);
        return;
    }
    if (nread < 0) close(failure_of(d.source), d.sink);  // a reset, or an error like one
}

void Session::on_write(uv_write_t* req, int status) {
    Session* s = of(req);
    s->write_done(req == &s->upstream_.write_req ? s->upstream_ : s->downstream_, status);
}

void Session::write_done(Direction& d, int status) {
    d.writing = false;
    if (d.pending) listener_.worker().give_block(std::move(d.pending));
    if (state_ == State::failing && status < 0) close(SessionEnd::connect_failed);
    if (state_ != State::established) return;  // failing, or cancelled by close
    if (status < 0) {
        close(failure_of(d.sink), d.source);
        return;
    }
    last_activity_ms_ = uv_now(listener_.worker().loop());
    if (d.eof) {
        finish_direction(d);
        return;
    }
    if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(d.source), on_alloc, on_read);
        rc < 0) {
        close(failure_of(d.source), d.sink);
    }
}

void Session::finish_direction(Direction& d) {
    if (int rc = uv_shutdown(&d.shutdown_req, reinterpret_cast<uv_stream_t*>(d.sink), on_shutdown);
        rc < 0) {
        close(failure_of(d.sink), d.source);
    }
}

void Session::on_shutdown(uv_shutdown_t* req, int status) {
    Session* s = of(req);
    s->shutdown_done(req == &s->upstream_.shutdown_req ? s->upstream_ : s->downstream_, status);
}

void Session::shutdown_done(Direction& d, int status) {
    if (state_ == State::failing && status < 0) close(SessionEnd::connect_failed);
    if (state_ != State::established) return;
    if (status < 0) {
        close(failure_of(d.sink), d.source);
        return;
    }
    d.finished = true;
    if (upstream_.finished && downstream_.finished) close(end_);
}

void Session::on_timer(uv_timer_t* timer) {
    Session* s = of(timer);
    switch (s->state_) {
        case State::awaiting_header:
            s->reject_header(fmt::format("none within proxy_timeout ({})",
                                         format_duration(s->listener_.service().proxy_timeout)));
            return;
        case State::connecting:
            s->count_backend_failure();
            s->attempt_failed("timeout");
            return;
        case State::established: {
            // Reads only stamp last_activity_ms_; the one timer re-arms for what is left.
            auto idle_limit =
                static_cast<std::uint64_t>(s->listener_.service().idle_timeout.count());
            std::uint64_t idle = uv_now(s->listener_.worker().loop()) - s->last_activity_ms_;
            if (idle >= idle_limit) {
                s->close(SessionEnd::idle_timeout);
            } else {
                uv_timer_start(&s->timer_, on_timer, idle_limit - idle, 0);
            }
            return;
        }
        case State::failing:
            s->close(SessionEnd::connect_failed);
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

void Session::destroy() {
    const std::uint64_t now = uv_now(listener_.worker().loop());
    if (backend_choice_ != nullptr) {
        backend_choice_->active.fetch_sub(1, std::memory_order_relaxed);
        traffic_of(*backend_choice_)
            .session_duration.observe(std::chrono::milliseconds(now - started_ms_));
    }
    if (listener_.worker().config().log.access_log) {
        spdlog::info(
            "access client={}{} service={} backend={} bytes_in={} bytes_out={} "
            "duration_ms={} end={}",
            client_text(), listener_.service().accept_proxy ? " via=" + peer_text() : "",
            listener_.service().name,
            backend_choice_ != nullptr ? backend_choice_->config.name : "-", upstream_.bytes,
            downstream_.bytes, now - started_ms_, to_string(end_));
    }
    // A session that held a backend connection frees two descriptors: enough to resume
    // accepting early after running out (a failed one would just fail again).
    if (backend_choice_ != nullptr) listener_.resume_accepting();
    listener_.session_closed();
    listener_.worker().remove(this);  // may free a retired listener: last use of listener_
    delete this;
}

BackendTraffic& Session::traffic_of(Backend& backend) {
    return backend.traffic[listener_.worker().id()];
}

std::string Session::client_text() const {
    return format_sockaddr(client_addr_.get());
}

std::string Session::peer_text() const {
    return format_sockaddr(peer_addr_.get());
}

}  // namespace fulcrum
