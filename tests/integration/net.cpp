#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>

namespace fulcrum::test {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

void set_timeouts(int fd, int seconds) {
    timeval tv{seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void set_nonblocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

Socket& Socket::operator=(Socket&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.release();
    }
    return *this;
}

Socket::~Socket() {
    if (fd_ >= 0) ::close(fd_);
}

int Socket::release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
}

void Socket::send_all(std::string_view data) const {
    while (!data.empty()) {
        ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("send");
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string Socket::read_some(std::size_t max) const {
    std::string buf(max, '\0');
    for (;;) {
        ssize_t n = ::recv(fd_, buf.data(), max, 0);
        if (n >= 0) {
            buf.resize(static_cast<std::size_t>(n));
            return buf;
        }
        if (errno != EINTR) throw_errno("recv");
    }
}

std::string Socket::read_to_eof() const {
    std::string all;
    for (;;) {
        std::string chunk = read_some();
        if (chunk.empty()) return all;
        all += chunk;
    }
}

std::string Socket::read_exact(std::size_t n) const {
    std::string all;
    while (all.size() < n) {
        std::string chunk = read_some(std::min<std::size_t>(65536, n - all.size()));
        if (chunk.empty()) throw std::runtime_error("recv: EOF before the expected bytes");
        all += chunk;
    }
    return all;
}

int Socket::read_until_closed() const {
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n == 0) return 0;
        if (n < 0 && errno != EINTR) return errno;
    }
}

void Socket::shutdown_write() const {
    if (::shutdown(fd_, SHUT_WR) < 0) throw_errno("shutdown");
}

void Socket::reset() {
    linger no_linger{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &no_linger, sizeof no_linger);
    ::close(release());
}

Socket try_connect(std::uint16_t port, int& error) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("socket");
    set_timeouts(s.fd(), 30);
    sockaddr_in addr = loopback(port);
    if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        error = errno;
        return {};
    }
    error = 0;
    return s;
}

Socket connect_at(const sockaddr_in& address, int timeout_seconds) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("socket");
    set_timeouts(s.fd(), timeout_seconds);
    if (::connect(s.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        char host[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
        throw_errno("connect to " + std::string(host) + ":" +
                    std::to_string(ntohs(address.sin_port)));
    }
    int one = 1;
    setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

Socket connect_to(std::uint16_t port, int timeout_seconds) {
    return connect_at(loopback(port), timeout_seconds);
}

Socket start_connect(std::uint16_t port) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("socket");
    sockaddr_in addr = loopback(port);
    if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 &&
        errno != EINPROGRESS) {
        throw_errno("connect");
    }
    return s;
}

Socket listen_at(const sockaddr_in& address, int backlog) {
    Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("socket");
    if (::bind(s.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        throw_errno("bind");
    }
    if (::listen(s.fd(), backlog) < 0) throw_errno("listen");
    return s;
}

Socket listen_any(int backlog) {
    return listen_at(loopback(0), backlog);
}

std::uint16_t local_port(const Socket& socket) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
        throw_errno("getsockname");
    }
    return ntohs(addr.sin_port);
}

std::string pattern(std::size_t size, std::uint64_t seed) {
    std::string out(size, '\0');
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (std::size_t i = 0; i < size; i += 8) {
        x ^= x << 13;  // xorshift64: fast, and no byte pattern repeats within a test
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(out.data() + i, &x, std::min<std::size_t>(8, size - i));
    }
    return out;
}

ScriptedServer::ScriptedServer(Handler handler)
    : handler_(std::move(handler)), listener_(listen_any()), port_(local_port(listener_)) {
    acceptor_ = std::thread([this] { accept_loop(); });
}

ScriptedServer::~ScriptedServer() {
    stopping_ = true;
    ::shutdown(listener_.fd(), SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    std::lock_guard lock(threads_mutex_);
    for (auto& t : threads_) t.join();
}

void ScriptedServer::accept_loop() {
    while (!stopping_) {
        int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        ++accepted_;
        set_timeouts(fd, 30);
        std::lock_guard lock(threads_mutex_);
        threads_.emplace_back([this, fd] {
            try {
                handler_(Socket(fd));
            } catch (const std::exception&) {
                // A peer going away mid-script is what several tests provoke.
            }
        });
    }
}

EchoServer::EchoServer() : EchoServer(listen_any(4096)) {}

EchoServer::EchoServer(Socket listener)
    : listener_(std::move(listener)), port_(local_port(listener_)) {
    set_nonblocking(listener_.fd());
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd_ < 0 || wake_fd_ < 0) throw_errno("epoll/eventfd");
    for (int fd : {listener_.fd(), wake_fd_}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    }
    thread_ = std::thread([this] { run(); });
}

EchoServer::~EchoServer() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
    ::close(epoll_fd_);
    ::close(wake_fd_);
}

void EchoServer::run() {
    struct Connection {
        std::string unsent;  // read but not yet echoed: reading pauses while it is non-empty
    };
    std::map<int, Connection> connections;
    auto update = [&](int fd, const Connection& c) {
        epoll_event ev{};
        ev.events = c.unsent.empty() ? EPOLLIN : EPOLLOUT;
        ev.data.fd = fd;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    };
    auto drop = [&](int fd) {
        ::close(fd);
        connections.erase(fd);
    };
    char buf[65536];
    epoll_event events[64];
    for (;;) {
        int n = epoll_wait(epoll_fd_, events, 64, -1);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == wake_fd_) {
                for (auto& [cfd, c] : connections) ::close(cfd);
                return;
            }
            if (fd == listener_.fd()) {
                for (int cfd;
                     (cfd = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                    ++accepted_;
                    connections[cfd] = {};
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.fd = cfd;
                    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            Connection& c = connections[fd];
            if (c.unsent.empty()) {
                ssize_t r = ::recv(fd, buf, sizeof buf, 0);
                if (r < 0 && errno == EAGAIN) continue;
                if (r < 0) {
                    drop(fd);
                    continue;
                }
                if (r == 0) {  // all echoed already: answer the FIN by closing
                    drop(fd);
                    continue;
                }
                c.unsent.assign(buf, static_cast<std::size_t>(r));
            }
            ssize_t w = ::send(fd, c.unsent.data(), c.unsent.size(), MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
                drop(fd);
                continue;
            }
            if (w > 0) c.unsent.erase(0, static_cast<std::size_t>(w));
            update(fd, c);
        }
    }
}

int run_echo_clients(std::uint16_t port, int connections, std::size_t bytes_each,
                     int timeout_seconds) {
    struct Client {
        Socket socket;
        std::string data;
        std::size_t sent = 0;
        std::string received;
        bool done = false;
    };
    std::vector<Client> clients(static_cast<std::size_t>(connections));
    for (int i = 0; i < connections; ++i) {
        Client& c = clients[static_cast<std::size_t>(i)];
        c.socket = connect_to(port, timeout_seconds);
        set_nonblocking(c.socket.fd());
        c.data = pattern(bytes_each, static_cast<std::uint64_t>(i) + 100);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
    std::vector<pollfd> fds(clients.size());
    int finished = 0;
    char buf[65536];
    while (finished < connections && std::chrono::steady_clock::now() < deadline) {
        for (std::size_t i = 0; i < clients.size(); ++i) {
            Client& c = clients[i];
            fds[i] = {c.socket.fd(), 0, 0};
            if (c.done) continue;
            fds[i].events = POLLIN | (c.sent < c.data.size() ? POLLOUT : 0);
        }
        if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
        for (std::size_t i = 0; i < clients.size(); ++i) {
            Client& c = clients[i];
            if (c.done || fds[i].revents == 0) continue;
            if (c.sent < c.data.size() && (fds[i].revents & POLLOUT)) {
                ssize_t w = ::send(c.socket.fd(), c.data.data() + c.sent, c.data.size() - c.sent,
                                   MSG_NOSIGNAL);
                if (w > 0) c.sent += static_cast<std::size_t>(w);
                if (c.sent == c.data.size()) c.socket.shutdown_write();
            }
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = ::recv(c.socket.fd(), buf, sizeof buf, 0);
                if (r > 0) c.received.append(buf, static_cast<std::size_t>(r));
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    c.done = true;
                    ++finished;
                }
            }
        }
    }
    int intact = 0;
    for (const Client& c : clients) intact += c.done && c.received == c.data ? 1 : 0;
    return intact;
}

}  // namespace fulcrum::test
