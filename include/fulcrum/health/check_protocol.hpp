#pragma once
// The bytes of the non-HTTP checks (tcp, send-expect, redis, postgres, mysql): what a
// check writes once connected, how the reply received so far is judged, and what it
// writes before closing. No sockets here, so every rule is unit-tested on plain bytes;
// tcp_probe.hpp moves them over a connection.

#include <cstddef>
#include <string>
#include <string_view>

#include "fulcrum/config/config.hpp"

namespace fulcrum {

// The most of a reply a check keeps: every verdict is made within it.
inline constexpr std::size_t max_check_reply = 4096;
static_assert(max_expect_bytes <= max_check_reply);

// What a check says to the backend, apart from the judging.
struct CheckScript {
    std::string request;  // written once connected (after a PROXY header)
    // Written after a passing reply, before closing: the polite way to leave (Redis QUIT).
    std::string farewell;
    // Whether a reply is judged at all; false: the check passes once `request` is written.
    bool reads = true;
};

// Not for CheckType::http, which the probe threads run (http_probe.hpp).
CheckScript check_script(const HealthConfig& health);

struct ReplyVerdict {
    enum class Status { incomplete, passed, failed };
    Status status = Status::incomplete;
    std::string detail;  // passed or failed: for the log and /status

    bool operator==(const ReplyVerdict&) const = default;
};

// Judges the first bytes of the reply (all of them so far). Incomplete means "read more";
// with max_check_reply bytes in, the caller fails the check.
ReplyVerdict judge_reply(const HealthConfig& health, std::string_view received);

// The detail of a reply that is not what the check expects: "unexpected reply: " and its
// first bytes escaped.
std::string unexpected_reply(std::string_view received);

// Bytes made safe for a log line: printable ASCII kept (a backslash doubled), every other
// byte as \xNN; past `max` bytes cut, with "..." appended.
std::string escape_bytes(std::string_view bytes, std::size_t max = 32);

}  // namespace fulcrum
