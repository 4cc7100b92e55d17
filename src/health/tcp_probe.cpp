#include "fulcrum/health/tcp_probe.hpp"

#include <netinet/in.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "fulcrum/health/check_protocol.hpp"
#include "fulcrum/proto/proxy_protocol.hpp"

namespace fulcrum {

namespace {

using Status = ReplyVerdict::Status;

// The most read from a peer while leaving; one that is still sending then is cut off.
constexpr std::size_t max_drain = 64 * 1024;

ProbeResult failed(CheckFailure reason, std::string detail) {
    return {false, std::move(detail), reason};
}

// A libuv error as the failure a user reads in the log, /status and the metrics' reason.
ProbeResult failed_with(int status) {
    switch (status) {
        case UV_ECONNREFUSED:
            return failed(CheckFailure::refused, "refused");
        case UV_ENETUNREACH:
        case UV_EHOSTUNREACH:
            return failed(CheckFailure::refused, uv_strerror(status));
        case UV_ETIMEDOUT:
            return failed(CheckFailure::timeout, "timeout");
        case UV_ECONNRESET:
        case UV_EPIPE:
            return failed(CheckFailure::reset, "reset");
        default:
            return failed(CheckFailure::error, uv_strerror(status));
    }
}

class TcpProbe {
public:
    TcpProbe(const HealthConfig& health, const BackendConfig& backend, ProbeDone done)
        : health_(health),
          backend_name_(backend.name),
          done_(std::move(done)),
          script_(check_script(health)) {
        if (health.send_proxy && backend.send_proxy) {
            outgoing_ = encode_proxy_local(*backend.send_proxy);
        }
        outgoing_ += script_.request;
        address_ = backend.address.storage;
        if (health.port != 0) {
            const auto port = htons(static_cast<std::uint16_t>(health.port));
            if (address_.ss_family == AF_INET6) {
                reinterpret_cast<sockaddr_in6*>(&address_)->sin6_port = port;
            } else {
                reinterpret_cast<sockaddr_in*>(&address_)->sin_port = port;
            }
        }
    }

    // Takes ownership of `this`: freed once its handles are closed.
    void start(uv_loop_t* loop) {
        if (int rc = uv_timer_init(loop, &timer_); rc < 0) {
            spdlog::error("health: backend {}: uv_timer_init: {}", backend_name_, uv_strerror(rc));
            report(failed(CheckFailure::error, std::string("uv_timer_init: ") + uv_strerror(rc)));
            delete this;
            return;
        }
        timer_.data = this;
        open_handles_ = 1;
        if (int rc = uv_tcp_init(loop, &socket_); rc < 0) {
            fail_call("uv_tcp_init", rc);
            return;
        }
        socket_.data = this;
        ++open_handles_;
        const auto timeout = static_cast<std::uint64_t>(health_.timeout.count());
        if (int rc = uv_timer_start(&timer_, on_timer, timeout, 0); rc < 0) {
            fail_call("uv_timer_start", rc);
            return;
        }
        connect_.data = this;
        const int rc = uv_tcp_connect(&connect_, &socket_,
                                      reinterpret_cast<const sockaddr*>(&address_), on_connect);
        if (rc < 0) {
            // Local trouble, descriptors short say: not the backend's answer, so say so.
            spdlog::warn("health: backend {}: cannot start a connection: {}", backend_name_,
                         uv_strerror(rc));
            report(failed_with(rc));
            close();
        }
    }

private:
    enum class Phase { connecting, checking, leaving, closing };

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&socket_); }

    // The verdict, once; later calls do nothing.
    void report(const ProbeResult& result) {
        if (!done_) return;
        const ProbeDone done = std::move(done_);
        done_ = nullptr;
        done(result);
    }

    // A libuv call failed for a reason of fulcrum's own: logged, and the check fails.
    void fail_call(const char* what, int rc) {
        spdlog::error("health: backend {}: {}: {}", backend_name_, what, uv_strerror(rc));
        report(failed(CheckFailure::error, std::string(what) + ": " + uv_strerror(rc)));
        close();
    }

    static void on_connect(uv_connect_t* request, int status) {
        auto* self = static_cast<TcpProbe*>(request->data);
        if (self->phase_ == Phase::closing) return;
        if (status < 0) {
            self->report(failed_with(status));
            self->close();
            return;
        }
        self->phase_ = Phase::checking;
        // Read at once: a server may speak first (MySQL), or answer before the write's
        // callback has run.
        if (self->script_.reads && !self->start_reading()) return;
        if (!self->outgoing_.empty()) {
            if (!self->write(self->request_write_, self->outgoing_)) return;
        } else if (!self->script_.reads) {
            self->pass_unread();
        }
    }

    static void on_write(uv_write_t* request, int status) {
        auto* self = static_cast<TcpProbe*>(request->data);
        if (self->phase_ == Phase::closing) return;
        if (status < 0) {
            self->report(failed_with(status));
            self->close();
            return;
        }
        if (request == &self->request_write_ && !self->script_.reads) self->pass_unread();
    }

    // A check that reads nothing passes once connected and its request is out.
    void pass_unread() {
        report({true, script_.request.empty() ? "connected" : "connected, request sent"});
        leave(false);
    }

    static void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        auto* self = static_cast<TcpProbe*>(handle->data);
        std::size_t room = self->chunk_.size();
        // While judging, never more than max_check_reply in all.
        if (self->phase_ == Phase::checking) {
            room = std::min(room, max_check_reply - self->received_.size());
        }
        *buf = uv_buf_init(self->chunk_.data(), static_cast<unsigned>(room));
    }

    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<TcpProbe*>(stream->data);
        if (nread == 0 || self->phase_ == Phase::closing) return;
        if (self->phase_ == Phase::leaving) {
            // Read to the peer's FIN, so that nothing unread turns the close into a reset.
            self->drained_ += nread > 0 ? static_cast<std::size_t>(nread) : 0;
            if (nread < 0 || self->drained_ > max_drain) self->close();
            return;
        }
        if (nread == UV_EOF) {
            self->report(self->received_.empty()
                             ? failed(CheckFailure::reset, "closed without a reply")
                             : failed(CheckFailure::response, unexpected_reply(self->received_)));
            self->close();
            return;
        }
        if (nread < 0) {
            self->report(failed_with(static_cast<int>(nread)));
            self->close();
            return;
        }
        self->received_.append(buf->base, static_cast<std::size_t>(nread));
        ReplyVerdict verdict = judge_reply(self->health_, self->received_);
        if (verdict.status == Status::incomplete && self->received_.size() >= max_check_reply) {
            verdict = {Status::failed, unexpected_reply(self->received_)};
        }
        if (verdict.status == Status::incomplete) return;
        const bool success = verdict.status == Status::passed;
        self->report({success, std::move(verdict.detail), CheckFailure::response});
        self->leave(success);
    }

    static void on_timer(uv_timer_t* timer) {
        auto* self = static_cast<TcpProbe*>(timer->data);
        self->report(failed(CheckFailure::timeout, "timeout"));
        self->close();
    }

    static void on_shutdown(uv_shutdown_t* request, int status) {
        auto* self = static_cast<TcpProbe*>(request->data);
        if (self->phase_ == Phase::closing || status >= 0) return;
        self->close();  // the peer is gone already
    }

    bool start_reading() {
        if (reading_) return true;
        if (int rc = uv_read_start(stream(), on_alloc, on_read); rc < 0) {
            fail_call("uv_read_start", rc);
            return false;
        }
        reading_ = true;
        return true;
    }

    bool write(uv_write_t& request, const std::string& bytes) {
        request.data = this;
        uv_buf_t buf =
            uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
        if (int rc = uv_write(&request, stream(), &buf, 1, on_write); rc < 0) {
            report(failed_with(rc));
            close();
            return false;
        }
        return true;
    }

    // The verdict is in: the farewell (after a pass), our FIN, then the peer's bytes to
    // its FIN, within what is left of the timeout.
    void leave(bool farewell) {
        phase_ = Phase::leaving;
        if (farewell && !script_.farewell.empty() && !write(farewell_write_, script_.farewell)) {
            return;
        }
        shutdown_.data = this;
        if (int rc = uv_shutdown(&shutdown_, stream(), on_shutdown); rc < 0) {
            close();
            return;
        }
        start_reading();
    }

    void close() {
        if (phase_ == Phase::closing) return;
        phase_ = Phase::closing;
        uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_close);
        if (open_handles_ == 2) uv_close(reinterpret_cast<uv_handle_t*>(&socket_), on_close);
    }

    static void on_close(uv_handle_t* handle) {
        auto* self = static_cast<TcpProbe*>(handle->data);
        if (--self->open_handles_ == 0) delete self;
    }

    const HealthConfig health_;
    const std::string backend_name_;
    ProbeDone done_;
    CheckScript script_;
    std::string outgoing_;  // the PROXY header, if any, and the request
    sockaddr_storage address_{};

    Phase phase_ = Phase::connecting;
    int open_handles_ = 0;  // the timer, then also the socket
    bool reading_ = false;
    std::string received_;     // the reply so far, at most max_check_reply bytes
    std::size_t drained_ = 0;  // bytes read while leaving
    std::array<char, 1024> chunk_{};

    uv_timer_t timer_{};
    uv_tcp_t socket_{};
    uv_connect_t connect_{};
    uv_write_t request_write_{};
    uv_write_t farewell_write_{};
    uv_shutdown_t shutdown_{};
};

}  // namespace

void start_tcp_probe(uv_loop_t* loop, const HealthConfig& health, const BackendConfig& backend,
                     ProbeDone done) {
    (new TcpProbe(health, backend, std::move(done)))->start(loop);
}

}  // namespace fulcrum
