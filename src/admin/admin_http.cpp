#include "fulcrum/admin/admin_http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fulcrum {

namespace {

using Clock = std::chrono::steady_clock;

// After answering, the connection is read and discarded for a moment before it is
// closed: closing with unread bytes sends a reset, which can make the client drop the
// answer before reading it.
constexpr std::size_t linger_bytes = 64 * 1024;
constexpr std::chrono::milliseconds linger_time{500};

// Set on the accept thread while it runs a connection refused at the cap.
thread_local bool refusing_connection = false;

// httplib's thread pool, refusing connections past a cap on those it holds (queued or
// being served). httplib calls enqueue() on its accept thread only.
class HeldConnections final : public httplib::TaskQueue {
public:
    // `on_turn` runs on the accept thread at each turn of its loop.
    HeldConnections(std::size_t threads, std::size_t max_held, std::function<void()> on_turn)
        : pool_(threads), max_held_(max_held), on_turn_(std::move(on_turn)) {}

    void on_idle() override { on_turn_(); }
    void enqueue(std::function<void()> serve) override {
        on_turn_();
        if (held_.load() >= max_held_) {
            if (refused_++ == 0) {
                spdlog::warn("admin: {} connections open; refusing new ones (503) until one ends",
                             max_held_);
            }
            refusing_connection = true;
            serve();  // answers 503 and closes, without blocking
            refusing_connection = false;
            return;
        }
        if (refused_ > 0) {
            spdlog::info("admin: taking connections again, after refusing {}", refused_);
            refused_ = 0;
        }
        held_.fetch_add(1);
        pool_.enqueue([this, serve = std::move(serve)] {
            serve();
            held_.fetch_sub(1);
        });
    }
    void shutdown() override { pool_.shutdown(); }

private:
    httplib::ThreadPool pool_;
    const std::size_t max_held_;
    std::atomic<std::size_t> held_{0};
    std::size_t refused_ = 0;  // accept thread only
    std::function<void()> on_turn_;
};

// Waits until `fd` has one of `events` (or an error to report) before `deadline`.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, events, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready > 0) return true;
        if (ready < 0 && errno != EINTR) return false;
    }
}

const char* status_text(int status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 408:
            return "Request Timeout";
        case 411:
            return "Length Required";
        case 413:
            return "Payload Too Large";
        case 414:
            return "URI Too Long";
        case 431:
            return "Request Header Fields Too Large";
        default:
            return "Service Unavailable";
    }
}

// A whole response with a JSON error body, like the endpoint's own errors.
std::string error_response(int status, std::string_view reason) {
    const std::string body = nlohmann::json{{"error", reason}}.dump(2) + "\n";
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
        "Connection: close\r\n\r\n{}",
        status, status_text(status), body.size(), body);
}

// "ip" and port of either end of a connected socket.
template <typename GetName>
void endpoint_of(int fd, GetName get_name, std::string& ip, int& port) {
    sockaddr_storage address{};
    socklen_t size = sizeof address;
    if (get_name(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
        ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
        port = ntohs(v4.sin_port);
    } else if (address.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
        ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
        port = ntohs(v6.sin6_port);
    }
    ip = text;
}

// One request on a connection, read against a deadline: first its head, checked as it
// arrives (read_head), then, for httplib, that head and exactly the body it announces.
// Past the request's end, reads see the end of the stream.
class RequestStream final : public httplib::Stream {
public:
    RequestStream(socket_t fd, const AdminHttp::Limits& limits)
        : fd_(fd), limits_(limits), read_deadline_(Clock::now() + limits.request_timeout) {
        assert(limits.request.max_request_line < limits.request.max_head);
        received_.reserve(limits.request.max_head + 1);
    }

    // Reads until the head is complete or rejected. Rejected with status 0: the client
    // closed or failed first, and there is nobody to answer.
    HeadCheck read_head() {
        const RequestLimits& request = limits_.request;
        for (;;) {
            const HeadCheck check = check_request_head(received_, request);
            if (check.verdict == HeadCheck::Verdict::complete) {
                end_ = check.head_size + check.body_size;
                return check;
            }
            if (check.verdict == HeadCheck::Verdict::rejected) return check;
            // One byte past the head limit is enough to judge any head.
            const std::size_t held = received_.size();
            received_.resize(request.max_head + 1);
            const ssize_t n = receive(received_.data() + held, received_.size() - held);
            received_.resize(held + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
            if (n <= 0) {
                HeadCheck gone;
                gone.verdict = HeadCheck::Verdict::rejected;
                if (timed_out_) {
                    gone.status = 408;
                    gone.reason = "request not complete in time";
                }
                return gone;
            }
        }
    }

    // Writes a whole response, within the response deadline.
    void write_all(std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = write(data.data(), data.size());
            if (n <= 0) return;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    bool is_readable() const override {
        return consumed_ < received_.size() || wait_for(fd_, POLLIN, read_deadline_);
    }
    bool is_writable() const override { return wait_for(fd_, POLLOUT, write_deadline()); }

    ssize_t read(char* ptr, size_t size) override {
        if (consumed_ >= end_) return 0;
        size = std::min(size, end_ - consumed_);
        if (consumed_ < received_.size()) {
            size = std::min(size, received_.size() - consumed_);
            std::memcpy(ptr, received_.data() + consumed_, size);
            consumed_ += size;
            return static_cast<ssize_t>(size);
        }
        const ssize_t n = receive(ptr, size);
        if (n > 0) consumed_ += static_cast<std::size_t>(n);
        return n;
    }

    ssize_t write(const char* ptr, size_t size) override {
        for (;;) {
            const ssize_t n = ::send(fd_, ptr, size, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0) return n;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
            if (!wait_for(fd_, POLLOUT, write_deadline())) return -1;
        }
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        endpoint_of(fd_, ::getpeername, ip, port);
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        endpoint_of(fd_, ::getsockname, ip, port);
    }
    socket_t socket() const override { return fd_; }

private:
    // One recv, waiting for data until the request deadline; -1 on an error or timeout.
    ssize_t receive(char* ptr, std::size_t size) {
        for (;;) {
            const ssize_t n = ::recv(fd_, ptr, size, MSG_DONTWAIT);
            if (n >= 0) return n;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
            if (!wait_for(fd_, POLLIN, read_deadline_)) {
                timed_out_ = true;
                return -1;
            }
        }
    }

    // The response's deadline runs from its first write.
    Clock::time_point write_deadline() const {
        if (!write_deadline_) write_deadline_ = Clock::now() + limits_.response_timeout;
        return *write_deadline_;
    }

    const socket_t fd_;
    const AdminHttp::Limits& limits_;
    const Clock::time_point read_deadline_;
    mutable std::optional<Clock::time_point> write_deadline_;
    std::string received_;      // the head, and whatever came with it
    std::size_t consumed_ = 0;  // bytes of the request handed to httplib
    std::size_t end_ = 0;       // the request's size: head and body
    bool timed_out_ = false;
};

// Reads and discards what the client still sends, for a bounded time and amount, so
// that the close does not reset a connection whose answer is still unread; then closes.
void close_after_answer(socket_t fd) {
    ::shutdown(fd, SHUT_WR);
    const Clock::time_point deadline = Clock::now() + linger_time;
    char discard[16 * 1024];
    for (std::size_t total = 0; total < linger_bytes && wait_for(fd, POLLIN, deadline);) {
        const ssize_t n = ::recv(fd, discard, sizeof discard, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
        total += static_cast<std::size_t>(std::max<ssize_t>(n, 0));
    }
    ::close(fd);
}

}  // namespace

AdminHttp::AdminHttp(Limits limits) : limits_(limits) {
    // The accept loop waits in poll() for at most this long, so that one whose socket was
    // given up (give_up_listening_socket) ends soon.
    set_idle_interval(std::chrono::milliseconds(200));
    new_task_queue = [this] {
        return new HeldConnections(limits_.request_threads, limits_.max_connections,
                                   [this] { release_if_given_up(); });
    };
}

void AdminHttp::release_if_given_up() {
    if (!give_up_.load()) return;
    // The loop ends when it sees no socket, and shuts nothing down: the new process
    // accepts on the socket from now on.
    const socket_t fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) ::close(fd);
}

void AdminHttp::close_unused_socket() {
    const socket_t fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) ::close(fd);
}

bool AdminHttp::process_and_close_socket(socket_t sock) {
    if (refusing_connection) {
        // On the accept thread: one try to answer, no waiting. Its result does not matter:
        // the connection closes either way.
        const std::string answer = error_response(503, "too many admin connections");
        ::send(sock, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        ::close(sock);
        return false;
    }
    if (svr_sock_ == INVALID_SOCKET) {  // stopping: connections still queued go unserved
        ::close(sock);
        return false;
    }
    RequestStream stream(sock, limits_);
    const HeadCheck head = stream.read_head();
    bool served = false;
    if (head.verdict == HeadCheck::Verdict::complete) {
        bool connection_closed = false;
        served = process_request(stream, /*close_connection=*/true, connection_closed, nullptr);
    } else if (head.status != 0) {
        std::string ip;
        int port = 0;
        stream.get_remote_ip_and_port(ip, port);
        spdlog::debug("admin: {} to {}:{}: {}", head.status, ip, port, head.reason);
        stream.write_all(error_response(head.status, head.reason));
    }
    close_after_answer(sock);
    return served;
}

}  // namespace fulcrum
