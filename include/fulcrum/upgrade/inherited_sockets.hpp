#pragma once
// The new process's side of a binary upgrade (BinaryUpgrade is the old one's): the
// listening sockets the running fulcrum handed over across exec, and the pipe that tells
// it when this process serves. The sockets are descriptors 3, 4, ... in the order the
// lines of FULCRUM_UPGRADE_SOCKETS give their keys (a listener_key, or "admin"); the
// pipe is FULCRUM_UPGRADE_READY_FD. The sockets are shared with the old process, never
// reopened: a SO_REUSEPORT socket that closes drops the connections queued on it.

#include <string>
#include <utility>
#include <vector>

#include "fulcrum/net/listener.hpp"

namespace fulcrum {

inline constexpr const char* upgrade_sockets_variable = "FULCRUM_UPGRADE_SOCKETS";
inline constexpr const char* upgrade_ready_variable = "FULCRUM_UPGRADE_READY_FD";
inline constexpr const char* admin_socket_key = "admin";
inline constexpr int first_handed_descriptor = 3;

class InheritedSockets {
public:
    InheritedSockets() = default;  // a normal start: none
    // Reads and unsets the variables. When they are set, closes every other descriptor
    // above 2 the old process let through (its libraries' sockets without O_CLOEXEC,
    // which would keep its connections open), and skips (closes) a descriptor that is
    // not a listening socket. Throws std::runtime_error on malformed variables.
    static InheritedSockets from_environment();
    ~InheritedSockets();
    InheritedSockets(InheritedSockets&& other) noexcept;
    InheritedSockets& operator=(InheritedSockets&& other) noexcept;
    InheritedSockets(const InheritedSockets&) = delete;
    InheritedSockets& operator=(const InheritedSockets&) = delete;

    // Started by a running fulcrum's upgrade.
    bool upgrading() const { return ready_fd_ >= 0; }
    // Every socket handed over for `key`, with the address it is bound to; they are
    // the caller's from now on.
    std::vector<ListeningSocket> take(const std::string& key);
    // Closes the sockets nobody took: addresses the new configuration does not serve.
    void close_untaken();
    // Tells the old process that this one serves; it drains from then on. Once only.
    void report_ready();

private:
    void close_all();  // without a word: the process is failing to start

    std::vector<std::pair<std::string, ListeningSocket>> sockets_;  // by key
    int ready_fd_ = -1;
};

}  // namespace fulcrum
