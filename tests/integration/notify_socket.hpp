#pragma once
// A NOTIFY_SOCKET as systemd binds it, for tests of fulcrum's systemd notifications.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "net.hpp"

namespace fulcrum::test {

// A datagram socket at a path in a directory of its own; one message per datagram.
// A thread reads it at once, as systemd does: the kernel queues only
// net.unix.max_dgram_qlen (10) datagrams, and then blocks the sender, fulcrum's main loop
// in sd_notify(), until the test next reads; with watchdog pings every 200 ms that took
// 2 s, and an upgrade under ThreadSanitizer took longer.
class NotifySocket {
public:
    NotifySocket();
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    const std::string& path() const { return path_; }

    // The next message, or nullopt when none comes within `timeout`.
    std::optional<std::string> next(std::chrono::milliseconds timeout) const;
    // Reads messages until one holds `line` as one of its lines; those before it go to
    // `skipped`. The message, or nullopt after `timeout`.
    std::optional<std::string> wait_for(const std::string& line, std::chrono::milliseconds timeout,
                                        std::vector<std::string>* skipped = nullptr) const;

private:
    void read_loop();

    TempDir dir_;
    std::string path_;
    Socket socket_;
    mutable std::mutex mutex_;
    mutable std::condition_variable arrived_;
    mutable std::deque<std::string> messages_;
    std::atomic<bool> stopping_{false};
    std::thread reader_;
};

// Whether one of the lines of `message` starts with `prefix`.
bool has_line_starting(const std::string& message, const std::string& prefix);

}  // namespace fulcrum::test
