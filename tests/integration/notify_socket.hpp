#pragma once
// A NOTIFY_SOCKET as systemd binds it, for tests of fulcrum's systemd notifications.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"
#include "net.hpp"

namespace fulcrum::test {

// A datagram socket at a path in a directory of its own; one message per datagram.
class NotifySocket {
public:
    NotifySocket();

    const std::string& path() const { return path_; }

    // The next message, or nullopt when none comes within `timeout`.
    std::optional<std::string> next(std::chrono::milliseconds timeout) const;
    // Reads messages until one holds `line` as one of its lines; those before it go to
    // `skipped`. The message, or nullopt after `timeout`.
    std::optional<std::string> wait_for(const std::string& line, std::chrono::milliseconds timeout,
                                        std::vector<std::string>* skipped = nullptr) const;

private:
    TempDir dir_;
    std::string path_;
    Socket socket_;
};

// Whether one of the lines of `message` starts with `prefix`.
bool has_line_starting(const std::string& message, const std::string& prefix);

}  // namespace fulcrum::test
