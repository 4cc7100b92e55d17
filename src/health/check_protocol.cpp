#include "fulcrum/health/check_protocol.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <iterator>
#include <stdexcept>

namespace fulcrum {

namespace {

using Status = ReplyVerdict::Status;

// Redis (RESP): PING is answered with the simple string PONG, or, by a server that wants
// AUTH first, with the error NOAUTH, which proves a live Redis just as well.
constexpr std::string_view redis_ping = "PING\r\n";
constexpr std::string_view redis_pong = "+PONG\r\n";
constexpr std::string_view redis_noauth = "-NOAUTH";
constexpr std::string_view redis_quit = "QUIT\r\n";

// PostgreSQL's SSLRequest: length 8, then the code 80877103 (1234 << 16 | 5679), both
// big-endian. The server answers one byte, 'S' (TLS may follow) or 'N', and then waits
// for a startup packet; a client that leaves instead is not logged as an error.
constexpr char postgres_ssl_request[] = {0, 0, 0, 8, 0x04, static_cast<char>(0xd2), 0x16, 0x2f};

// MySQL and MariaDB speak first: a packet (3-byte little-endian payload length, sequence
// number 0) holding the initial handshake, protocol version 10 then the server version
// NUL-terminated, or an error packet (0xff, a 2-byte code, the message) when the server
// turns the client away, e.g. "Too many connections".
constexpr unsigned char mysql_protocol_10 = 0x0a;
constexpr unsigned char mysql_error_packet = 0xff;
constexpr std::size_t mysql_header = 4;

ReplyVerdict passed(std::string detail) {
    return {Status::passed, std::move(detail)};
}

ReplyVerdict failed(std::string detail) {
    return {Status::failed, std::move(detail)};
}

// `received` begins with `expected`: passed; could still become it: incomplete.
ReplyVerdict match_prefix(std::string_view received, std::string_view expected,
                          std::string detail) {
    if (received.starts_with(expected)) return passed(std::move(detail));
    if (expected.starts_with(received)) return {};
    return failed(unexpected_reply(received));
}

ReplyVerdict judge_redis(std::string_view received) {
    if (received.starts_with(redis_pong)) return passed("PONG");
    if (received.starts_with(redis_noauth)) {
        return passed("NOAUTH: a live Redis that requires authentication");
    }
    if (redis_pong.starts_with(received) || redis_noauth.starts_with(received)) return {};
    return failed(unexpected_reply(received));
}

ReplyVerdict judge_postgres(std::string_view received) {
    if (received.empty()) return {};
    if (received.front() == 'S') return passed("SSLRequest answered S (TLS available)");
    if (received.front() == 'N') return passed("SSLRequest answered N (no TLS)");
    return failed(unexpected_reply(received));
}

ReplyVerdict judge_mysql(std::string_view received) {
    if (received.size() <= mysql_header) return {};
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(received[i]); };
    const std::size_t length = byte(0) | (byte(1) << 8) | (byte(2) << 16);
    if (byte(3) != 0 || length == 0) return failed(unexpected_reply(received));
    const std::string_view payload = received.substr(mysql_header, length);
    const bool whole = payload.size() == length;
    if (byte(mysql_header) == mysql_protocol_10) {
        const std::size_t end = payload.find('\0', 1);
        if (end != std::string_view::npos) {
            return passed("handshake v10, server " + escape_bytes(payload.substr(1, end - 1)));
        }
        return whole ? failed(unexpected_reply(received)) : ReplyVerdict{};
    }
    if (byte(mysql_header) == mysql_error_packet && length >= 3) {
        if (!whole) return {};
        const unsigned code = byte(mysql_header + 1) | (byte(mysql_header + 2) << 8);
        return failed(
            fmt::format("server error {}: {}", code, escape_bytes(payload.substr(3), 80)));
    }
    return failed(unexpected_reply(received));
}

}  // namespace

CheckScript check_script(const HealthConfig& health) {
    switch (health.type) {
        case CheckType::tcp:
            return {.request = {}, .farewell = {}, .reads = false};
        case CheckType::send_expect:
            return {.request = health.send, .farewell = {}, .reads = !health.expect.empty()};
        case CheckType::redis:
            return {.request = std::string(redis_ping),
                    .farewell = std::string(redis_quit),
                    .reads = true};
        case CheckType::postgres:
            return {.request = std::string(postgres_ssl_request, sizeof postgres_ssl_request),
                    .farewell = {},
                    .reads = true};
        case CheckType::mysql:
            return {.request = {}, .farewell = {}, .reads = true};
        case CheckType::http:
            break;
    }
    throw std::logic_error("check_script: HTTP checks run on the probe threads");
}

ReplyVerdict judge_reply(const HealthConfig& health, std::string_view received) {
    switch (health.type) {
        case CheckType::send_expect:
            return match_prefix(received, health.expect, "reply matched");
        case CheckType::redis:
            return judge_redis(received);
        case CheckType::postgres:
            return judge_postgres(received);
        case CheckType::mysql:
            return judge_mysql(received);
        case CheckType::tcp:
        case CheckType::http:
            break;
    }
    throw std::logic_error("judge_reply: this check type reads no reply");
}

std::string unexpected_reply(std::string_view received) {
    return "unexpected reply: " + escape_bytes(received);
}

std::string escape_bytes(std::string_view bytes, std::size_t max) {
    std::string out;
    for (const char c : bytes.substr(0, max)) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\\') {
            out += "\\\\";
        } else if (u >= 0x20 && u < 0x7f) {
            out += c;
        } else {
            fmt::format_to(std::back_inserter(out), "\\x{:02x}", u);
        }
    }
    if (bytes.size() > max) out += "...";
    return out;
}

}  // namespace fulcrum
