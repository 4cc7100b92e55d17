#include "fulcrum/upgrade/inherited_sockets.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace fulcrum {

namespace {

// The variable's value, unset from the environment (a later upgrade sets its own).
std::string take_variable(const char* name) {
    const char* value = std::getenv(name);
    std::string taken = value != nullptr ? value : "";
    ::unsetenv(name);
    return taken;
}

bool is_listening_socket(int fd) {
    int accepting = 0;
    socklen_t length = sizeof accepting;
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting != 0;
}

}  // namespace

InheritedSockets InheritedSockets::from_environment() {
    const std::string keys = take_variable(upgrade_sockets_variable);
    const std::string ready = take_variable(upgrade_ready_variable);
    InheritedSockets inherited;
    if (ready.empty()) return inherited;
    int ready_fd = -1;
    const auto [end, error] = std::from_chars(ready.data(), ready.data() + ready.size(), ready_fd);
    if (error != std::errc() || end != ready.data() + ready.size() ||
        ready_fd < first_handed_descriptor) {
        throw std::runtime_error(std::string(upgrade_ready_variable) +
                                 " is not a descriptor: " + ready);
    }
    inherited.ready_fd_ = ready_fd;
    ::close_range(static_cast<unsigned>(ready_fd) + 1, ~0U, 0);

    int fd = first_handed_descriptor;
    std::string_view rest = keys;
    while (!rest.empty() && fd < ready_fd) {
        const std::size_t newline = rest.find('\n');
        const std::string key(rest.substr(0, newline));
        rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
        ListeningSocket socket{fd, {}};
        socklen_t length = sizeof socket.bound.storage;
        if (!is_listening_socket(fd) ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&socket.bound.storage), &length) < 0) {
            spdlog::warn("upgrade: descriptor {} ({}) is not a listening socket; ignored", fd, key);
            ::close(fd);
        } else {
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // a later upgrade passes what it means to
            socket.bound.text = socket.bound.numeric();
            inherited.sockets_.emplace_back(key, socket);
        }
        ++fd;
    }
    ::fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    return inherited;
}

InheritedSockets::~InheritedSockets() {
    close_all();
}

void InheritedSockets::close_all() {
    for (const auto& entry : sockets_) ::close(entry.second.fd);
    sockets_.clear();
    if (ready_fd_ >= 0) ::close(std::exchange(ready_fd_, -1));
}

InheritedSockets::InheritedSockets(InheritedSockets&& other) noexcept
    : sockets_(std::move(other.sockets_)), ready_fd_(std::exchange(other.ready_fd_, -1)) {
    other.sockets_.clear();
}

InheritedSockets& InheritedSockets::operator=(InheritedSockets&& other) noexcept {
    if (this == &other) return *this;
    close_all();
    sockets_ = std::move(other.sockets_);
    other.sockets_.clear();
    ready_fd_ = std::exchange(other.ready_fd_, -1);
    return *this;
}

std::vector<ListeningSocket> InheritedSockets::take(const std::string& key) {
    std::vector<ListeningSocket> taken;
    std::erase_if(sockets_, [&](const auto& entry) {
        if (entry.first != key) return false;
        taken.push_back(entry.second);
        return true;
    });
    return taken;
}

void InheritedSockets::close_untaken() {
    for (const auto& [key, socket] : sockets_) {
        spdlog::info("upgrade: {} is no longer configured; closing its handed-over socket", key);
        ::close(socket.fd);
    }
    sockets_.clear();
}

void InheritedSockets::report_ready() {
    if (ready_fd_ < 0) return;
    const char ready = '1';
    while (::write(ready_fd_, &ready, 1) < 0 && errno == EINTR) {
    }
    ::close(ready_fd_);
    ready_fd_ = -1;
}

}  // namespace fulcrum
