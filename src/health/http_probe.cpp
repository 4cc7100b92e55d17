#include "fulcrum/health/http_probe.hpp"

#include <httplib.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>
#include <system_error>

#include "fulcrum/proto/proxy_protocol.hpp"

namespace fulcrum {

namespace {

using Clock = std::chrono::steady_clock;

ProbeResult failed(httplib::Error error) {
    switch (error) {
        case httplib::Error::Connection:
            return {false, "connect failed (refused or unreachable)", CheckFailure::refused};
        case httplib::Error::ConnectionTimeout:
            return {false, "connect timeout", CheckFailure::timeout};
        case httplib::Error::Read:
            return {false, "no valid response (closed early or malformed)", CheckFailure::response};
        default:
            return {false, httplib::to_string(error), CheckFailure::error};
    }
}

// The connection of one probe as httplib sees it. Every wait ends at the probe's deadline
// (not a per-read timeout, which a peer resets with each byte it sends), and reading
// stops after max_response_head bytes: httplib would otherwise grow an endless header
// line, or collect endless headers, in memory.
class DeadlineStream : public httplib::Stream {
public:
    DeadlineStream(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

    // Why reading or writing stopped early, if it did.
    const std::optional<ProbeResult>& failure() const { return failure_; }

    bool is_readable() const override { return !failure_; }
    bool is_writable() const override { return !failure_; }

    ssize_t read(char* ptr, std::size_t size) override {
        if (offset_ == filled_ && !fill()) return failure_ ? -1 : 0;
        const std::size_t n = std::min(size, filled_ - offset_);
        std::memcpy(ptr, buffer_.data() + offset_, n);
        offset_ += n;
        return static_cast<ssize_t>(n);
    }

    using httplib::Stream::write;
    ssize_t write(const char* ptr, std::size_t size) override {
        for (;;) {
            if (!wait_for(POLLOUT)) return -1;
            const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n >= 0) return n;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return fail_errno();
        }
    }

    // Only a server asks for the addresses of its peer; a probe never does.
    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        ip.clear();
        port = 0;
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        ip.clear();
        port = 0;
    }
    int socket() const override { return fd_; }

private:
    // Refills the buffer; false at EOF or on a failure.
    bool fill() {
        offset_ = filled_ = 0;
        if (received_ >= max_response_head) {
            failure_ = ProbeResult{
                false,
                "response headers longer than " + std::to_string(max_response_head) + " bytes",
                CheckFailure::response};
            return false;
        }
        const std::size_t want = std::min(buffer_.size(), max_response_head - received_);
        for (;;) {
            if (!wait_for(POLLIN)) return false;
            const ssize_t n = ::recv(fd_, buffer_.data(), want, MSG_DONTWAIT);
            if (n >= 0) {
                filled_ = static_cast<std::size_t>(n);
                received_ += filled_;
                return n > 0;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                fail_errno();
                return false;
            }
        }
    }

    // Waits until the socket is ready for `events`; false (a timeout) at the deadline.
    bool wait_for(short events) {
        for (;;) {
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
            if (left.count() <= 0) {
                failure_ = ProbeResult{false, "timeout", CheckFailure::timeout};
                return false;
            }
            pollfd p{fd_, events, 0};
            const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
            if (rc > 0) return true;  // errors and hang-ups show in the next recv or send
            if (rc < 0 && errno != EINTR) {
                fail_errno();
                return false;
            }
        }
    }

    ssize_t fail_errno() {
        const bool reset = errno == ECONNRESET || errno == EPIPE;
        failure_ = ProbeResult{false, std::system_category().message(errno),
                               reset ? CheckFailure::reset : CheckFailure::error};
        return -1;
    }

    int fd_;
    Clock::time_point deadline_;
    std::optional<ProbeResult> failure_;
    std::array<char, 4096> buffer_{};
    std::size_t offset_ = 0;
    std::size_t filled_ = 0;
    std::size_t received_ = 0;
};

// httplib's client, sending its request and parsing the response over a DeadlineStream.
class ProbeClient : public httplib::ClientImpl {
public:
    using httplib::ClientImpl::ClientImpl;

    ProbeResult run(const HealthConfig& health, const std::string& host,
                    std::string_view proxy_header) {
        const Clock::time_point deadline = Clock::now() + health.timeout;
        set_connection_timeout(
            std::chrono::duration_cast<std::chrono::microseconds>(health.timeout));
        Socket socket;
        httplib::Error error = httplib::Error::Success;
        if (!create_and_connect_socket(socket, error)) return failed(error);
        const Closer closer{socket.sock};
        DeadlineStream stream(socket.sock, deadline);
        while (!proxy_header.empty()) {
            const ssize_t n = stream.write(proxy_header.data(), proxy_header.size());
            if (n < 0) return *stream.failure();
            proxy_header.remove_prefix(static_cast<std::size_t>(n));
        }

        httplib::Request request;
        request.method = "GET";
        request.path = health.path;
        request.headers = {{"Host", host}};
        // Only the status matters: stop once the headers are in, before any of the body.
        bool head_read = false;
        request.response_handler = [&head_read](const httplib::Response&) {
            head_read = true;
            return false;
        };
        httplib::Response response;
        const bool complete =
            process_request(stream, request, response, /*close_connection=*/true, error);
        if (complete || head_read) {
            const int status = response.status;
            const bool expected =
                status >= health.expect_status_min && status <= health.expect_status_max;
            return {expected, "status " + std::to_string(status), CheckFailure::status};
        }
        if (stream.failure()) return *stream.failure();
        return failed(error);
    }

private:
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    };
};

}  // namespace

ProbeResult probe_backend(const HealthConfig& health, const BackendConfig& backend) {
    const Address& address = backend.address;
    const int port = health.port != 0 ? health.port : address.port();
    std::string proxy_header;
    if (health.send_proxy && backend.send_proxy) {
        proxy_header = encode_proxy_local(*backend.send_proxy);
    }
    const std::string host = !health.host.empty() ? health.host : address.numeric();
    ProbeClient client(address.ip(), port);
    return client.run(health, host, proxy_header);
}

}  // namespace fulcrum
