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
    reader_ = std::thread([this] { read_loop(); });
}

NotifySocket::~NotifySocket() {
    stopping_ = true;
    reader_.join();
}

void NotifySocket::read_loop() {
    while (!stopping_) {
        // A short poll, so that the destructor is never kept waiting long.
        pollfd ready{socket_.fd(), POLLIN, 0};
        if (::poll(&ready, 1, 50) != 1) continue;
        char buffer[4096];
        const ssize_t size = ::recv(socket_.fd(), buffer, sizeof buffer, 0);
        if (size < 0) continue;
        const std::lock_guard lock(mutex_);
        messages_.emplace_back(buffer, static_cast<std::size_t>(size));
        arrived_.notify_all();
    }
}

std::optional<std::string> NotifySocket::next(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    if (!arrived_.wait_for(lock, timeout, [this] { return !messages_.empty(); })) {
        return std::nullopt;
    }
    std::string message = std::move(messages_.front());
    messages_.pop_front();
    return message;
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
