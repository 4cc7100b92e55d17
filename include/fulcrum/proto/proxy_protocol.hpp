#pragma once
// The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy specifies it
// (haproxy.org, doc/proxy-protocol.txt): the header a proxy writes at the start of a
// connection to tell the receiver the original client and destination addresses.
// Encoding and decoding only, on bytes in memory: no socket code here.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace fulcrum {

enum class ProxyVersion { v1, v2 };
std::string_view to_string(ProxyVersion v);  // "v1", "v2"

// What a PROXY header carries.
struct ProxyHeader {
    // false for v1 "UNKNOWN", v2 LOCAL, and v2 PROXY with AF_UNSPEC, an unsupported family
    // (AF_UNIX) or a DGRAM transport: the receiver then uses the connection's own addresses.
    bool has_addresses = false;
    sockaddr_storage source{};  // AF_INET / AF_INET6 sockaddr with port, when has_addresses
    sockaddr_storage destination{};
};

// The longest v2 header the decoder accepts (16-byte fixed part + addresses + TLVs);
// longer ones are invalid. A receiver holds a partial header until it is complete, so this
// caps what one connection can make it buffer. 2048 fits the largest address block (UNIX,
// 216 bytes) plus every TLV the specification defines at a generous size (authority 255,
// unique ID 128, SSL with client CN and cipher names, ALPN, netns, AWS/Azure IDs, CRC32C:
// about 1000 bytes together) with room to spare, yet stays small per connection.
inline constexpr std::size_t proxy_v2_max_header = 2048;
// The longest v1 line, CRLF included, as the specification bounds it.
inline constexpr std::size_t proxy_v1_max_header = 107;

// A header for a connection from `source` to `destination` (AF_INET or AF_INET6 each).
// Mixed families: an IPv4-mapped IPv6 address is written as IPv4 when the other side is
// IPv4, otherwise the IPv4 side is widened to IPv4-mapped IPv6, so the header is TCP4 or
// TCP6. Anything else (nullptr, another family) gives v1 "PROXY UNKNOWN\r\n" and a v2 PROXY
// command with AF_UNSPEC and no addresses.
std::string encode_proxy_header(ProxyVersion version, const sockaddr* source,
                                const sockaddr* destination);
// What a health check sends: v1 "PROXY UNKNOWN\r\n", v2 the LOCAL command with no addresses.
std::string encode_proxy_local(ProxyVersion version);

struct ProxyParse {
    enum class Status { incomplete, complete, invalid };
    Status status = Status::incomplete;
    std::size_t length = 0;                   // complete: the header's length; the rest is payload
    ProxyVersion version = ProxyVersion::v1;  // complete
    ProxyHeader header;                       // complete
    std::string error;                        // invalid: what is wrong, short, for a log line
};

// Parses the start of a connection's byte stream. Never reads past data.size().
// - incomplete: every byte so far can start a v1 or v2 header; call again with more. For v2
//   that holds until all 16 + length bytes are there; v1 fields are checked as they arrive
//   (characters allowed, length, port range) and in full once the CRLF is there.
// - complete: `length` bytes form a header; v2 TLVs are skipped (their lengths must fit
//   the header, their types are not interpreted).
// - invalid: the stream does not start with a valid header; close the connection.
// Strictness: v1 fields are separated by exactly one space, addresses must parse as the
// announced family, ports are 0..65535 in decimal without sign or leading zero; "UNKNOWN"
// may be followed by anything up to the CRLF. v2: version 2, command LOCAL or PROXY; with
// PROXY the family byte must be one the specification defines and the length must hold
// its address block. A LOCAL header's family and body are ignored, as the spec requires.
ProxyParse parse_proxy_header(std::string_view data);

}  // namespace fulcrum
