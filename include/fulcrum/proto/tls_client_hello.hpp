#pragma once
// The TLS ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2) as far as routing by server name
// needs it (RFC 6066 3): which name the client asks for, read from the first bytes of a
// connection without terminating TLS. Decoding only, on bytes in memory: no socket code.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fulcrum {

// The most a ClientHello may take, its TLS record headers included: post-quantum key
// shares make them larger than one TCP segment (about 1.8 KB), none real comes near this.
inline constexpr std::size_t client_hello_max_bytes = 16 * 1024;

// What the start of a connection says about TLS.
struct ClientHello {
    // false: the client does not begin with a TLS handshake (plain text, another protocol).
    bool tls = false;
    // The SNI host name, canonical (lowercase, no trailing dot); none when the client sent
    // no server_name extension, or an SSLv2-compatible hello (which cannot carry one).
    std::optional<std::string> server_name;
};

struct ClientHelloParse {
    enum class Status { incomplete, complete, invalid };
    Status status = Status::incomplete;
    ClientHello hello;  // complete
    std::string error;  // invalid: what is wrong, short, for a log line
};

// Parses the start of a connection's byte stream; never reads past data.size().
// - incomplete: every byte so far can begin a ClientHello; call again with more. The
//   hello may be split across TCP segments at any byte and across several handshake
//   records (RFC 8446 5.1 allows fragmenting it).
// - complete: the whole ClientHello is there (bytes after it are not looked at), or the
//   first bytes are not a TLS handshake record (hello.tls false).
// - invalid: a TLS record or ClientHello that breaks its format, is longer than
//   client_hello_max_bytes, or a non-handshake record before the hello ends.
ClientHelloParse parse_client_hello(std::string_view data);

}  // namespace fulcrum
