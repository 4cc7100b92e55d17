#include "notify_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <sstream>

namespace fulcrum::test {

using namespace std::chrono_literals;

NotifySocket::NotifySocket()
    : path_(dir_.path() + "/notify"), socket_(::socket(AF_UNIX, SOCK_DGRAM, 0)) {
    REQUIRE(socket_);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    REQUIRE(::bind(socket_.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
}

std::optional<std::string> NotifySocket::next(std::chrono::milliseconds timeout) const {
    pollfd ready{socket_.fd(), POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buffer[4096];
    const ssize_t size = ::recv(socket_.fd(), buffer, sizeof buffer, 0);
    if (size < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(size));
}

std::optional<std::string> NotifySocket::wait_for(const std::string& line,
                                                  std::chrono::milliseconds timeout,
                                                  std::vector<std::string>* skipped) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) return std::nullopt;
        std::optional<std::string> message = next(left);
        if (!message) return std::nullopt;
        std::istringstream lines(*message);
        for (std::string each; std::getline(lines, each);) {
            if (each == line) return message;
        }
        if (skipped != nullptr) skipped->push_back(*message);
    }
}

bool has_line_starting(const std::string& message, const std::string& prefix) {
    std::istringstream lines(message);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind(prefix, 0) == 0) return true;
    }
    return false;
}

}  // namespace fulcrum::test
