// The bytes of the non-HTTP checks: what each type sends, and how replies are judged,
// on packets as the servers' protocol documents give them.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "fulcrum/health/check_protocol.hpp"

using namespace fulcrum;
using namespace std::string_literals;
using Status = ReplyVerdict::Status;

namespace {

HealthConfig of_type(CheckType type) {
    HealthConfig health;
    health.type = type;
    return health;
}

ReplyVerdict judge(CheckType type, std::string_view received) {
    return judge_reply(of_type(type), received);
}

// Every proper prefix of `reply` is incomplete: a reply split across reads is judged whole.
void check_every_prefix_incomplete(const HealthConfig& health, std::string_view reply) {
    for (std::size_t n = 0; n < reply.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK(judge_reply(health, reply.substr(0, n)).status == Status::incomplete);
    }
}

// A MySQL protocol-10 initial handshake packet (MySQL manual, "Protocol::HandshakeV10"),
// as MySQL 5.7 sends it: header (length 0x4a, sequence 0), version 10, "5.7.44\0", the
// connection id, the auth-plugin data and capabilities.
const std::string mysql_handshake =
    "\x4a\x00\x00\x00"
    "\x0a"
    "5.7.44\x00"
    "\x08\x00\x00\x00"
    "\x3b\x5a\x2f\x10\x6e\x5c\x53\x7b\x00"
    "\xff\xff\x08\x02\x00\xff\xc1\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x2a\x4c\x30\x0c\x68\x46\x3d\x74\x66\x0b\x11\x6f\x00"
    "mysql_native_password\x00"s;

}  // namespace

TEST_CASE("escape_bytes keeps printable ASCII and writes the rest as \\xNN", "[health]") {
    CHECK(escape_bytes("+PONG") == "+PONG");
    CHECK(escape_bytes("-ERR\r\n") == "-ERR\\x0d\\x0a");
    CHECK(escape_bytes("a\\b") == "a\\\\b");
    CHECK(escape_bytes("\x00\xff\x7f"s) == "\\x00\\xff\\x7f");
    CHECK(escape_bytes(std::string(40, 'x')) == std::string(32, 'x') + "...");
    CHECK(escape_bytes("abcdef", 3) == "abc...");
    CHECK(escape_bytes("") == "");
    CHECK(unexpected_reply("HTTP/1.1 400\r\n") == "unexpected reply: HTTP/1.1 400\\x0d\\x0a");
}

TEST_CASE("tcp sends nothing and reads nothing", "[health]") {
    const CheckScript script = check_script(of_type(CheckType::tcp));
    CHECK(script.request.empty());
    CHECK(script.farewell.empty());
    CHECK_FALSE(script.reads);
}

TEST_CASE("send-expect sends `send` and passes on a reply that starts with `expect`", "[health]") {
    HealthConfig health = of_type(CheckType::send_expect);
    health.send = "HELLO\r\n";
    health.expect = "+OK";
    const CheckScript script = check_script(health);
    CHECK(script.request == "HELLO\r\n");
    CHECK(script.reads);
    CHECK(script.farewell.empty());

    check_every_prefix_incomplete(health, "+OK");
    CHECK(judge_reply(health, "+OK").status == Status::passed);
    CHECK(judge_reply(health, "+OK ready\r\n").status == Status::passed);
    // A mismatch is known at its first wrong byte, without waiting for more.
    const ReplyVerdict wrong = judge_reply(health, "-E");
    CHECK(wrong.status == Status::failed);
    CHECK(wrong.detail == "unexpected reply: -E");
    CHECK(judge_reply(health, "+O\x00"s).detail == "unexpected reply: +O\\x00");

    health.expect.clear();  // nothing to read: it passes once the request is written
    CHECK_FALSE(check_script(health).reads);
}

TEST_CASE("redis: PING, then +PONG; -NOAUTH is a live Redis too; QUIT to leave", "[health]") {
    const CheckScript script = check_script(of_type(CheckType::redis));
    CHECK(script.request == "PING\r\n");
    CHECK(script.farewell == "QUIT\r\n");
    CHECK(script.reads);

    check_every_prefix_incomplete(of_type(CheckType::redis), "+PONG\r\n");
    CHECK(judge(CheckType::redis, "+PONG\r\n") == ReplyVerdict{Status::passed, "PONG"});
    check_every_prefix_incomplete(of_type(CheckType::redis), "-NOAUTH");
    const ReplyVerdict noauth = judge(CheckType::redis, "-NOAUTH Authentication required.\r\n");
    CHECK(noauth.status == Status::passed);
    CHECK(noauth.detail == "NOAUTH: a live Redis that requires authentication");

    const ReplyVerdict loading =
        judge(CheckType::redis, "-LOADING Redis is loading the dataset in memory\r\n");
    CHECK(loading.status == Status::failed);
    CHECK(loading.detail == "unexpected reply: -LOADING Redis is loading the da...");
    CHECK(judge(CheckType::redis, "+PONGX").status == Status::failed);
    CHECK(judge(CheckType::redis, "HTTP/1.1").status == Status::failed);
}

TEST_CASE("postgres: an SSLRequest, then S or N", "[health]") {
    const CheckScript script = check_script(of_type(CheckType::postgres));
    // PostgreSQL docs, "Message Formats": SSLRequest is Int32(8) Int32(80877103).
    CHECK(script.request == "\x00\x00\x00\x08\x04\xd2\x16\x2f"s);
    CHECK(script.farewell.empty());

    CHECK(judge(CheckType::postgres, "").status == Status::incomplete);
    CHECK(judge(CheckType::postgres, "N").status == Status::passed);
    CHECK(judge(CheckType::postgres, "S").status == Status::passed);
    // A server older than 7.0 answers with an ErrorResponse ('E').
    const ReplyVerdict error = judge(CheckType::postgres, "E\x00\x00\x00\x10SFATAL"s);
    CHECK(error.status == Status::failed);
    CHECK(error.detail == "unexpected reply: E\\x00\\x00\\x00\\x10SFATAL");
    CHECK(judge(CheckType::postgres, "+PONG\r\n").status == Status::failed);
}

TEST_CASE("mysql: the initial handshake packet, protocol version 10", "[health]") {
    const CheckScript script = check_script(of_type(CheckType::mysql));
    CHECK(script.request.empty());  // the server speaks first
    CHECK(script.reads);

    REQUIRE(mysql_handshake.size() == 4 + 0x4a);
    // Judged once the version string is in, however the packet is split.
    const std::size_t version_end = mysql_handshake.find('\0', 5);
    for (std::size_t n = 0; n < mysql_handshake.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        const ReplyVerdict verdict = judge(CheckType::mysql, mysql_handshake.substr(0, n));
        CHECK(verdict.status == (n > version_end ? Status::passed : Status::incomplete));
    }
    CHECK(judge(CheckType::mysql, mysql_handshake) ==
          ReplyVerdict{Status::passed, "handshake v10, server 5.7.44"});

    // A MariaDB 10.11 greeting starts the same way.
    CHECK(judge(CheckType::mysql,
                "\x59\x00\x00\x00\x0a"
                "5.5.5-10.11.6-MariaDB-0+deb12u1\x00"s)
              .detail == "handshake v10, server 5.5.5-10.11.6-MariaDB-0+deb12u1");
}

TEST_CASE("mysql: an error packet, a wrong protocol or sequence fails", "[health]") {
    // ERR_Packet in place of the greeting (MySQL manual): 0xff, error code 1040
    // little-endian, the message (no SQL state before the handshake).
    const std::string too_many = "\x17\x00\x00\x00\xff\x10\x04Too many connections"s;
    check_every_prefix_incomplete(of_type(CheckType::mysql), too_many);
    CHECK(judge(CheckType::mysql, too_many) ==
          ReplyVerdict{Status::failed, "server error 1040: Too many connections"});

    // Protocol version 9 (MySQL before 3.21).
    CHECK(judge(CheckType::mysql,
                "\x0a\x00\x00\x00\x09"
                "3.20\x00"s)
              .status == Status::failed);
    // A sequence number other than 0: not a greeting.
    std::string resequenced = mysql_handshake;
    resequenced[3] = 1;
    CHECK(judge(CheckType::mysql, resequenced).status == Status::failed);
    // A packet that ends before its version string does.
    CHECK(judge(CheckType::mysql,
                "\x03\x00\x00\x00\x0a"
                "ab"s)
              .status == Status::failed);
    // Something else entirely: an SSH banner.
    const ReplyVerdict ssh = judge(CheckType::mysql, "SSH-2.0-OpenSSH_9.2\r\n");
    CHECK(ssh.status == Status::failed);
    CHECK(ssh.detail == "unexpected reply: SSH-2.0-OpenSSH_9.2\\x0d\\x0a");
}
