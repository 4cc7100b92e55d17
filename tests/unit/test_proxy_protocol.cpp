#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <string_view>

#include "fulcrum/config/address.hpp"
#include "fulcrum/proto/proxy_protocol.hpp"

using fulcrum::encode_proxy_header;
using fulcrum::encode_proxy_local;
using fulcrum::parse_address;
using fulcrum::parse_proxy_header;
using fulcrum::ProxyParse;
using fulcrum::ProxyVersion;
using Status = fulcrum::ProxyParse::Status;
using namespace std::string_literals;

namespace {

const std::string v2_signature = "\r\n\r\n\0\r\nQUIT\n"s;

std::string text_of(const sockaddr_storage& storage) {
    return fulcrum::format_sockaddr(reinterpret_cast<const sockaddr*>(&storage));
}

// A v2 header: the signature, then `rest` (version/command, family, length, body).
std::string v2(const std::string& rest) {
    return v2_signature + rest;
}

ProxyParse parsed_complete(std::string_view bytes) {
    const ProxyParse p = parse_proxy_header(bytes);
    INFO(p.error);
    REQUIRE(p.status == Status::complete);
    return p;
}

std::string invalid_error(std::string_view bytes) {
    const ProxyParse p = parse_proxy_header(bytes);
    REQUIRE(p.status == Status::invalid);
    CHECK_FALSE(p.error.empty());
    return p.error;
}

// Inputs with the error each must give.
struct Rejected {
    std::string input;
    std::string error;
};

void check_rejected(std::initializer_list<Rejected> cases) {
    for (const Rejected& c : cases) {
        INFO("input: " << c.input);
        CHECK(invalid_error(c.input) == c.error);
    }
}

// Feeds every prefix of `bytes`: each proper prefix of the header is incomplete, the whole
// header is complete with its length, and so is every longer prefix (payload after it).
void check_every_prefix(std::string_view bytes, std::size_t header_length) {
    for (std::size_t n = 0; n <= bytes.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        const ProxyParse p = parse_proxy_header(bytes.substr(0, n));
        INFO(p.error);
        if (n < header_length) {
            CHECK(p.status == Status::incomplete);
        } else {
            REQUIRE(p.status == Status::complete);
            CHECK(p.length == header_length);
        }
    }
}

// encode then parse, both versions; returns the addresses as read back, "src -> dst".
std::string round_trip(ProxyVersion version, const char* source, const char* destination) {
    const std::string bytes = encode_proxy_header(version, parse_address(source).sockaddr_ptr(),
                                                  parse_address(destination).sockaddr_ptr());
    const ProxyParse p = parsed_complete(bytes);
    CHECK(p.version == version);
    CHECK(p.length == bytes.size());
    REQUIRE(p.header.has_addresses);
    return text_of(p.header.source) + " -> " + text_of(p.header.destination);
}

}  // namespace

TEST_CASE("PROXY version names", "[proxy_protocol]") {
    CHECK(to_string(ProxyVersion::v1) == "v1");
    CHECK(to_string(ProxyVersion::v2) == "v2");
}

TEST_CASE("v1 TCP4 from the specification", "[proxy_protocol]") {
    const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    const ProxyParse p = parsed_complete(line);
    CHECK(p.version == ProxyVersion::v1);
    CHECK(p.length == line.size());
    CHECK(p.header.has_addresses);
    CHECK(text_of(p.header.source) == "192.168.0.1:56324");
    CHECK(text_of(p.header.destination) == "192.168.0.11:443");
    check_every_prefix(line, line.size());

    CHECK(encode_proxy_header(ProxyVersion::v1, parse_address("192.168.0.1:56324").sockaddr_ptr(),
                              parse_address("192.168.0.11:443").sockaddr_ptr()) == line);
}

TEST_CASE("v1 TCP6 and UNKNOWN worst cases from the specification", "[proxy_protocol]") {
    const std::string all_f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string tcp6 = "PROXY TCP6 " + all_f + " " + all_f + " 65535 65535\r\n";
    CHECK(tcp6.size() == 104);
    const ProxyParse p = parsed_complete(tcp6);
    CHECK(p.length == 104);
    CHECK(text_of(p.header.source) == "[" + all_f + "]:65535");
    CHECK(text_of(p.header.destination) == "[" + all_f + "]:65535");
    check_every_prefix(tcp6, tcp6.size());

    const std::string unknown = "PROXY UNKNOWN " + all_f + " " + all_f + " 65535 65535\r\n";
    CHECK(unknown.size() == fulcrum::proxy_v1_max_header);
    const ProxyParse u = parsed_complete(unknown);
    CHECK(u.length == 107);
    CHECK_FALSE(u.header.has_addresses);
    check_every_prefix(unknown, unknown.size());
}

TEST_CASE("v1 UNKNOWN", "[proxy_protocol]") {
    const ProxyParse p = parsed_complete("PROXY UNKNOWN\r\n");
    CHECK(p.length == 15);
    CHECK(p.version == ProxyVersion::v1);
    CHECK_FALSE(p.header.has_addresses);
    CHECK(encode_proxy_local(ProxyVersion::v1) == "PROXY UNKNOWN\r\n");
    // Anything up to the CRLF is ignored.
    CHECK(parsed_complete("PROXY UNKNOWN whatever \x01 it is\r\n").length == 32);
    check_every_prefix("PROXY UNKNOWN\r\n", 15);
}

TEST_CASE("v1 header followed by payload", "[proxy_protocol]") {
    const std::string line = "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n";
    const std::string stream = line + "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const ProxyParse p = parsed_complete(stream);
    CHECK(p.length == line.size());
    CHECK(stream.substr(p.length) == "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    check_every_prefix(stream, line.size());
}

TEST_CASE("v1 malformed lines are invalid", "[proxy_protocol]") {
    check_rejected({
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n",
         "v1: bad destination port for TCP4"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n", "v1: bad source port for TCP4"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 +5 443\r\n", "v1: bad source port for TCP4"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 -5 443\r\n", "v1: bad source port for TCP4"},
        {"PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n", "v1: bad source address for TCP4"},
        // inet_pton would stop at the NUL and see "1.2.3.4".
        {"PROXY TCP4 1.2.3.4\0x 5.6.7.8 1 2\r\n"s, "v1: bad source address for TCP4"},
        {"PROXY TCP4 ::1 192.168.0.11 56324 443\r\n", "v1: bad source address for TCP4"},
        {"PROXY TCP6 ::1 192.168.0.11 56324 443\r\n", "v1: bad destination address for TCP6"},
        {"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",
         "v1: empty destination address (fields take exactly one space between them)"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
         "v1: extra data after the destination port"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n", "v1: missing destination port"},
        {"PROXY TCP4\r\n", "v1: missing addresses and ports"},
        {"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
        {"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
        {"PROXY \r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n", "v1: LF without CR"},
        {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX", "v1: CR not followed by LF"},
        {"PROXY UNKNOWN\rX\r\n", "v1: CR not followed by LF"},
    });
}

TEST_CASE("v1 is rejected as soon as a byte cannot fit", "[proxy_protocol]") {
    check_rejected({
        {"PROXY TCP4 192.168.0.x", "v1: bad source address for TCP4"},
        {"PROXY TCP4 1.2.3.4 1.2.3.4 65536", "v1: bad source port for TCP4"},
        {"PROXY TCP4 1.2.3.4 1.2.3.4 01", "v1: bad source port for TCP4"},
        {"PROXY TCP4 1.2.3.4  ",
         "v1: empty destination address (fields take exactly one space between them)"},
        {"PROXY TCX", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
        {"PROXY UNKNOWNX\n", "v1: LF without CR"},
    });
    CHECK(parse_proxy_header("PROXY TCP4 1.2.3.4 1.2.3.4 0 ").status == Status::incomplete);
    CHECK(parse_proxy_header("PROXY UNKNOWN garbage").status == Status::incomplete);
    CHECK(parse_proxy_header("PROXY TCP6 ::ffff:1.2.3.4").status == Status::incomplete);
}

TEST_CASE("v1 line longer than 107 bytes", "[proxy_protocol]") {
    const std::string long_line = "PROXY UNKNOWN " + std::string(94, 'x');  // 108 bytes
    CHECK(long_line.size() == 108);
    CHECK(parse_proxy_header(long_line.substr(0, 106)).status == Status::incomplete);
    CHECK(invalid_error(long_line.substr(0, 107)) == "v1: no CRLF within 107 bytes");
    CHECK(invalid_error(long_line) == "v1: no CRLF within 107 bytes");
    // The CR as the 107th byte leaves no room for the LF.
    CHECK(invalid_error(long_line.substr(0, 106) + "\r") == "v1: no CRLF within 107 bytes");
    CHECK(invalid_error(long_line.substr(0, 106) + "\r\n") == "v1: no CRLF within 107 bytes");
    CHECK(parsed_complete(long_line.substr(0, 105) + "\r\n").length == 107);
}

TEST_CASE("bytes that start no PROXY header are invalid at once", "[proxy_protocol]") {
    check_rejected({
        {"GET / HTTP/1.1\r\n", "not a PROXY protocol header"},
        {"G", "not a PROXY protocol header"},
        {"PROXX", "not a PROXY protocol header"},
        {"proxy TCP4", "not a PROXY protocol header"},
        {"\r\n\r\n\0\r\nQUIX"s, "not a PROXY protocol header"},
        {"\x16\x03\x01"s, "not a PROXY protocol header"},
    });
    CHECK(parse_proxy_header("").status == Status::incomplete);
    CHECK(parse_proxy_header("PROX").status == Status::incomplete);
    CHECK(parse_proxy_header("\r\n\r\n\0\r\nQU"s).status == Status::incomplete);
}

TEST_CASE("v2 IPv4, bytes written out by hand", "[proxy_protocol]") {
    const std::string bytes =
        v2("\x21\x11\x00\x0c"     // v2 PROXY, TCP over IPv4, 12 bytes
           "\xc0\xa8\x00\x01"     // 192.168.0.1
           "\xc0\xa8\x00\x0b"     // 192.168.0.11
           "\xdc\x04\x01\xbb"s);  // 56324, 443
    CHECK(encode_proxy_header(ProxyVersion::v2, parse_address("192.168.0.1:56324").sockaddr_ptr(),
                              parse_address("192.168.0.11:443").sockaddr_ptr()) == bytes);
    const ProxyParse p = parsed_complete(bytes);
    CHECK(p.version == ProxyVersion::v2);
    CHECK(p.length == 28);
    CHECK(p.header.has_addresses);
    CHECK(text_of(p.header.source) == "192.168.0.1:56324");
    CHECK(text_of(p.header.destination) == "192.168.0.11:443");
    check_every_prefix(bytes + "payload", 28);
}

TEST_CASE("v2 IPv6", "[proxy_protocol]") {
    const std::string bytes =
        v2("\x21\x21\x00\x24"s
           "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"s  // 2001:db8::1
           "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"s  // ::1
           "\x00\x50\xff\xff"s);                                                // 80, 65535
    CHECK(encode_proxy_header(ProxyVersion::v2, parse_address("[2001:db8::1]:80").sockaddr_ptr(),
                              parse_address("[::1]:65535").sockaddr_ptr()) == bytes);
    const ProxyParse p = parsed_complete(bytes);
    CHECK(p.length == 52);
    CHECK(text_of(p.header.source) == "[2001:db8::1]:80");
    CHECK(text_of(p.header.destination) == "[::1]:65535");
    check_every_prefix(bytes, 52);
}

TEST_CASE("v2 LOCAL and UNSPEC carry no addresses", "[proxy_protocol]") {
    const std::string local = v2("\x20\x00\x00\x00"s);
    CHECK(encode_proxy_local(ProxyVersion::v2) == local);
    const ProxyParse l = parsed_complete(local);
    CHECK(l.version == ProxyVersion::v2);
    CHECK(l.length == 16);
    CHECK_FALSE(l.header.has_addresses);
    check_every_prefix(local, 16);

    // LOCAL ignores the family and skips whatever body the length announces.
    const ProxyParse body = parsed_complete(v2("\x20\x11\x00\x05"
                                               "abcde"s) +
                                            "payload");
    CHECK(body.length == 21);
    CHECK_FALSE(body.header.has_addresses);
    CHECK(parsed_complete(v2("\x20\x77\x00\x00"s)).length == 16);

    const std::string unspec = v2("\x21\x00\x00\x00"s);
    const ProxyParse u = parsed_complete(unspec);
    CHECK(u.length == 16);
    CHECK_FALSE(u.header.has_addresses);

    // What the encoder writes when it has no usable addresses.
    CHECK(encode_proxy_header(ProxyVersion::v2, nullptr, nullptr) == unspec);
    CHECK(encode_proxy_header(ProxyVersion::v1, nullptr, nullptr) == "PROXY UNKNOWN\r\n");
    sockaddr_storage unix_socket{};
    unix_socket.ss_family = AF_UNIX;
    const auto* sa = reinterpret_cast<const sockaddr*>(&unix_socket);
    CHECK(encode_proxy_header(ProxyVersion::v2, sa, parse_address("1.2.3.4:5").sockaddr_ptr()) ==
          unspec);
    CHECK(encode_proxy_header(ProxyVersion::v1, parse_address("1.2.3.4:5").sockaddr_ptr(), sa) ==
          "PROXY UNKNOWN\r\n");
}

TEST_CASE("v2 UNIX and DGRAM headers fall back to the connection's addresses", "[proxy_protocol]") {
    const std::string unix_stream = v2("\x21\x31\x00\xd8"s + std::string(216, 'u'));
    const ProxyParse u = parsed_complete(unix_stream);
    CHECK(u.length == 232);
    CHECK_FALSE(u.header.has_addresses);
    CHECK_FALSE(
        parsed_complete(v2("\x21\x32\x00\xd8"s + std::string(216, 'u'))).header.has_addresses);

    const std::string udp4 = v2("\x21\x12\x00\x0c"s + std::string(12, '\x01'));
    CHECK(parsed_complete(udp4).length == 28);
    CHECK_FALSE(parsed_complete(udp4).header.has_addresses);
    const std::string udp6 = v2("\x21\x22\x00\x24"s + std::string(36, '\x01'));
    CHECK_FALSE(parsed_complete(udp6).header.has_addresses);
}

TEST_CASE("v2 TLVs are skipped, whatever their type", "[proxy_protocol]") {
    const std::string tlvs =
        "\x01\x00\x02h2"s  // PP2_TYPE_ALPN
        "\x02\x00\x0b"
        "example.com"s                // PP2_TYPE_AUTHORITY
        "\xee\x00\x00"s               // a type nobody defined, empty
        "\x04\x00\x03\x00\x00\x00"s;  // PP2_TYPE_NOOP
    const std::string bytes = v2("\x21\x11\x00"s + static_cast<char>(12 + tlvs.size()) +
                                 "\x7f\x00\x00\x01\x7f\x00\x00\x02\x00\x01\x00\x02"s + tlvs);
    const ProxyParse p = parsed_complete(bytes + "payload");
    CHECK(p.length == bytes.size());
    CHECK(text_of(p.header.source) == "127.0.0.1:1");
    CHECK(text_of(p.header.destination) == "127.0.0.2:2");
    check_every_prefix(bytes + "payload", bytes.size());

    const std::string addresses = "\x7f\x00\x00\x01\x7f\x00\x00\x02\x00\x01\x00\x02"s;
    CHECK(invalid_error(v2("\x21\x11\x00\x0e"s + addresses + "\x01\x00"s)) ==
          "v2: truncated TLV header");
    CHECK(invalid_error(v2("\x21\x11\x00\x10"s + addresses + "\x01\x00\x02h"s)) ==
          "v2: TLV longer than the header");
}

TEST_CASE("v2 bad fixed fields are invalid as soon as they arrive", "[proxy_protocol]") {
    check_rejected({
        {v2("\x11"s), "v2: version 1, expected 2"},
        {v2("\x31\x11\x00\x0c"s), "v2: version 3, expected 2"},
        {v2("\x22"s), "v2: unknown command 2"},
        {v2("\x2f\x11\x00\x0c"s), "v2: unknown command 15"},
        {v2("\x21\x13"s), "v2: unknown address family/protocol 0x13"},
        {v2("\x21\x41\x00\x00"s), "v2: unknown address family/protocol 0x41"},
        {v2("\x21\x01\x00\x00"s), "v2: unknown address family/protocol 0x01"},
        {v2("\x21\x11\x00\x0b"s), "v2: length 11 too short for family 0x11 (needs 12)"},
        {v2("\x21\x21\x00\x0c"s + std::string(12, '\0')),
         "v2: length 12 too short for family 0x21 (needs 36)"},
        {v2("\x21\x31\x00\x24"s), "v2: length 36 too short for family 0x31 (needs 216)"},
        {v2("\x21\x11\x07\xf1"s), "v2: length 2033 over the limit of 2032"},
        {v2("\x20\x00\xff\xff"s), "v2: length 65535 over the limit of 2032"},
    });
}

TEST_CASE("v2 at the length cap", "[proxy_protocol]") {
    const std::size_t body = fulcrum::proxy_v2_max_header - 16;
    // UNSPEC with one TLV filling the whole body.
    const std::string tlv = "\xef"s + static_cast<char>((body - 3) >> 8) +
                            static_cast<char>((body - 3) & 0xff) + std::string(body - 3, 'v');
    const std::string bytes =
        v2("\x21\x00"s + static_cast<char>(body >> 8) + static_cast<char>(body & 0xff) + tlv);
    CHECK(bytes.size() == fulcrum::proxy_v2_max_header);
    CHECK(parse_proxy_header(bytes.substr(0, bytes.size() - 1)).status == Status::incomplete);
    CHECK(parsed_complete(bytes).length == fulcrum::proxy_v2_max_header);
}

TEST_CASE("encode then parse gives the same addresses", "[proxy_protocol]") {
    for (const ProxyVersion version : {ProxyVersion::v1, ProxyVersion::v2}) {
        INFO(to_string(version));
        CHECK(round_trip(version, "10.1.2.3:40000", "10.9.8.7:443") ==
              "10.1.2.3:40000 -> 10.9.8.7:443");
        CHECK(round_trip(version, "0.0.0.0:0", "255.255.255.255:65535") ==
              "0.0.0.0:0 -> 255.255.255.255:65535");
        CHECK(round_trip(version, "[2001:db8::5]:1234", "[fe80::1]:80") ==
              "[2001:db8::5]:1234 -> [fe80::1]:80");
        // Both mapped: stays TCP6.
        CHECK(round_trip(version, "[::ffff:1.2.3.4]:1", "[::ffff:5.6.7.8]:2") ==
              "[::ffff:1.2.3.4]:1 -> [::ffff:5.6.7.8]:2");
        // Mixed with a mapped side: written as IPv4.
        CHECK(round_trip(version, "[::ffff:1.2.3.4]:1", "5.6.7.8:2") == "1.2.3.4:1 -> 5.6.7.8:2");
        CHECK(round_trip(version, "1.2.3.4:1", "[::ffff:5.6.7.8]:2") == "1.2.3.4:1 -> 5.6.7.8:2");
        // Mixed with a real IPv6 side: the IPv4 side is widened.
        CHECK(round_trip(version, "1.2.3.4:1", "[2001:db8::1]:2") ==
              "[::ffff:1.2.3.4]:1 -> [2001:db8::1]:2");
        CHECK(round_trip(version, "[2001:db8::1]:1", "5.6.7.8:2") ==
              "[2001:db8::1]:1 -> [::ffff:5.6.7.8]:2");
    }
    CHECK(encode_proxy_header(ProxyVersion::v1, parse_address("1.2.3.4:1").sockaddr_ptr(),
                              parse_address("[2001:db8::1]:2").sockaddr_ptr()) ==
          "PROXY TCP6 ::ffff:1.2.3.4 2001:db8::1 1 2\r\n");
}
