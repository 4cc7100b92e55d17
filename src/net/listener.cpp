#include "fulcrum/net/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "fulcrum/net/session.hpp"
#include "fulcrum/net/worker.hpp"

namespace fulcrum {

namespace {

constexpr int listen_backlog = 4096;
constexpr int accept_batch = 64;
// How long accepting pauses when descriptors run out, unless a session frees one first.
constexpr std::uint64_t accept_pause_ms = 100;

}  // namespace

ListeningSocket open_listening_socket(const Address& address, const std::string& service,
                                      bool exclusive) {
    auto fail = [&](int fd, const char* step) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("service " + service + ": cannot listen on " + address.text +
                                 ": " + step + ": " + std::strerror(err));
    };
    if (exclusive && address.port() != 0) {
        // Without SO_REUSEPORT, bind fails when any socket listens there (SO_REUSEADDR
        // only lets it past connections in TIME_WAIT).
        int probe = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) fail(probe, "socket");
        int one = 1;
        if (::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
            fail(probe, "SO_REUSEADDR");
        }
        if (address.family() == AF_INET6 &&
            ::setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) {
            fail(probe, "IPV6_V6ONLY");
        }
        if (::bind(probe, address.sockaddr_ptr(), address.length()) < 0) {
            fail(probe, "address in use (another fulcrum or server listens there)");
        }
        ::close(probe);
    }
    // Made by hand: libuv 1.44 has no flag for SO_REUSEPORT.
    int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(fd, "socket");
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) fail(fd, "SO_REUSEADDR");
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) fail(fd, "SO_REUSEPORT");
    // "[::]:80" means IPv6 only, so that "0.0.0.0:80" can be a separate service.
    if (address.family() == AF_INET6 &&
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) {
        fail(fd, "IPV6_V6ONLY");
    }
    // Accepted sockets inherit it: one call per listener instead of one per connection.
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) fail(fd, "TCP_NODELAY");
    if (::bind(fd, address.sockaddr_ptr(), address.length()) < 0) fail(fd, "bind");
    if (::listen(fd, listen_backlog) < 0) fail(fd, "listen");
    ListeningSocket socket{fd, address};
    socklen_t len = sizeof socket.bound.storage;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&socket.bound.storage), &len);
    return socket;
}

Listener::Listener(Worker& worker, std::string key, std::shared_ptr<const ListenRoutes> routes,
                   ListeningSocket socket)
    : worker_(worker),
      key_(std::move(key)),
      routes_(std::move(routes)),
      bound_(std::move(socket.bound)),
      fd_(socket.fd) {}

Listener::~Listener() {
    if (fd_ >= 0) ::close(fd_);
}

const ServiceConfig* Listener::current_service(const std::string& name) const {
    for (const auto& service : routes_->services) {
        if (service->config->name == name) return service->config.get();
    }
    return nullptr;
}

std::string Listener::label() const {
    if (routes_->router) return "listen " + routes_->listen;
    return "service " + routes_->services.front()->config->name;
}

void Listener::start() {
    int rc = uv_poll_init_socket(worker_.loop(), &poll_, fd_);
    if (rc == 0) {
        uv_timer_init(worker_.loop(), &resume_timer_);
        poll_.data = resume_timer_.data = this;
        handles_open_ = true;
        rc = uv_poll_start(&poll_, UV_READABLE, on_readable);
    }
    if (rc < 0) {
        close();
        throw std::runtime_error(label() + ": cannot listen on " + bound_.text + ": " +
                                 uv_strerror(rc));
    }
}

void Listener::close() {
    if (!handles_open_) return;
    handles_open_ = false;
    // uv_close stops the poll at once, so the socket can be closed right after.
    closing_handles_ = 2;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&resume_timer_), on_closed);
    ::close(fd_);
    fd_ = -1;
}

void Listener::on_closed(uv_handle_t* handle) {
    auto* self = static_cast<Listener*>(handle->data);
    if (--self->closing_handles_ == 0) self->worker_.collect_retired();
}

bool Listener::finished() const {
    return !handles_open_ && closing_handles_ == 0 && sessions_ == 0;
}

void Listener::on_readable(uv_poll_t* poll, int status, int) {
    auto* self = static_cast<Listener*>(poll->data);
    if (status < 0) {
        spdlog::error("{}: listening socket: {}", self->label(), uv_strerror(status));
        return;
    }
    self->accept_pending();
}

void Listener::accept_pending() {
    // Bounded, so one busy listener cannot starve the sessions on this loop.
    for (int i = 0; i < accept_batch && handles_open_ && !paused_; ++i) {
        SocketAddress peer;
        socklen_t peer_length = sizeof peer.storage;
        int fd = ::accept4(fd_, peer.get(), &peer_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                pause_accepting(-errno);
            } else if (errno != EAGAIN) {
                spdlog::warn("{}: accept: {}", label(), std::strerror(errno));
            }
            return;
        }
        if (pauses_ > 0) {
            spdlog::info("{}: accepting again, after {} ms short of descriptors ({} pauses)",
                         label(), uv_now(worker_.loop()) - pause_began_ms_, pauses_);
            pauses_ = 0;
        }
        // Routed by server name: the service is chosen once the ClientHello is read.
        auto* session = new Session(worker_.context(), *this,
                                    routes_->router ? nullptr : routes_->services.front());
        ++sessions_;
        worker_.add(session);
        session->start(fd, peer);
    }
}

void Listener::session_closed(Session& session, bool held_backend) {
    // A session that held a backend connection frees two descriptors: enough to resume
    // accepting early after running out (a failed one would just fail again).
    if (held_backend) resume_accepting();
    --sessions_;
    worker_.remove(&session);  // may free this listener when retired: the last use of it
}

void Listener::pause_accepting(int error) {
    if (paused_ || !handles_open_) return;
    paused_ = true;
    worker_.context().traffic().accept_pauses.add();
    // Logged once per episode: the pause repeats every accept_pause_ms until it ends.
    if (pauses_++ == 0) {
        pause_began_ms_ = uv_now(worker_.loop());
        spdlog::warn("{}: out of descriptors ({}): accepting paused until some free up", label(),
                     uv_err_name(error));
    }
    uv_poll_stop(&poll_);
    uv_timer_start(&resume_timer_, on_resume, accept_pause_ms, 0);
}

void Listener::on_resume(uv_timer_t* timer) {
    static_cast<Listener*>(timer->data)->resume_accepting();
}

void Listener::resume_accepting() {
    if (!paused_ || !handles_open_) return;
    paused_ = false;
    uv_timer_stop(&resume_timer_);
    if (int rc = uv_poll_start(&poll_, UV_READABLE, on_readable); rc < 0) {
        spdlog::error("{}: cannot resume accepting: {}", label(), uv_strerror(rc));
    }
}

}  // namespace fulcrum
