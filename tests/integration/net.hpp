#pragma once
// Socket helpers and scripted peers for the integration tests: real TCP on 127.0.0.1,
// blocking calls bounded by socket timeouts so that no test can hang forever.

#include <netinet/in.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace fulcrum::test {

// An owned socket descriptor.
class Socket {
public:
    Socket() = default;
    explicit Socket(int fd) : fd_(fd) {}
    Socket(Socket&& other) noexcept : fd_(other.release()) {}
    Socket& operator=(Socket&& other) noexcept;
    ~Socket();

    int fd() const { return fd_; }
    int release();
    explicit operator bool() const { return fd_ >= 0; }

    void send_all(std::string_view data) const;
    // Reads until EOF; throws on an error (a reset included).
    std::string read_to_eof() const;
    // Reads exactly n bytes; throws on EOF or an error first.
    std::string read_exact(std::size_t n) const;
    // One recv(); returns the bytes (empty on EOF) or throws on an error.
    std::string read_some(std::size_t max = 65536) const;
    // errno of the first failing read (0 when it ended with a clean EOF), reading and
    // discarding data before it.
    int read_until_closed() const;
    void shutdown_write() const;
    // Close with an RST (SO_LINGER 0).
    void reset();

private:
    int fd_ = -1;
};

// 127.0.0.1:port as a socket address.
sockaddr_in loopback(std::uint16_t port);
// Blocking connect to `address` with `timeout_seconds` receive/send timeouts.
Socket connect_at(const sockaddr_in& address, int timeout_seconds = 30);
// connect_at 127.0.0.1:port.
Socket connect_to(std::uint16_t port, int timeout_seconds = 30);
// A connect that may fail: returns an empty Socket and sets `error` to errno.
Socket try_connect(std::uint16_t port, int& error);
// A non-blocking connect, left in progress (to fill a listener's accept queue).
Socket start_connect(std::uint16_t port);
// A listening socket on `address` (port 0: an ephemeral one).
Socket listen_at(const sockaddr_in& address, int backlog = 128);
// A listening socket on 127.0.0.1 with an ephemeral port.
Socket listen_any(int backlog = 128);
std::uint16_t local_port(const Socket& socket);

// Deterministic pseudo-random bytes: the same (seed, offset) always gives the same data.
std::string pattern(std::size_t size, std::uint64_t seed = 1);

// Accepts on its own thread and runs `handler` for each connection on a thread of its own.
// The destructor stops accepting and joins every thread.
class ScriptedServer {
public:
    using Handler = std::function<void(Socket)>;
    explicit ScriptedServer(Handler handler);
    ~ScriptedServer();
    std::uint16_t port() const { return port_; }
    int accepted() const { return accepted_.load(); }

private:
    void accept_loop();

    Handler handler_;
    Socket listener_;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> accepted_{0};
    std::mutex threads_mutex_;
    std::vector<std::thread> threads_;
    std::thread acceptor_;
};

// An echo server for many connections at once: one epoll thread, non-blocking sockets.
// Echoes with backpressure and answers FIN with FIN once all bytes are echoed.
class EchoServer {
public:
    // On 127.0.0.1, an ephemeral port.
    EchoServer();
    // On a listening socket made elsewhere (say, in another network namespace).
    explicit EchoServer(Socket listener);
    ~EchoServer();
    std::uint16_t port() const { return port_; }
    int accepted() const { return accepted_.load(); }

private:
    void run();

    Socket listener_;
    std::uint16_t port_ = 0;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

// Opens `connections` sockets to `port` at once, sends `bytes_each` bytes on each while
// reading the echo, and returns how many got back exactly what they sent.
int run_echo_clients(std::uint16_t port, int connections, std::size_t bytes_each,
                     int timeout_seconds);

}  // namespace fulcrum::test
