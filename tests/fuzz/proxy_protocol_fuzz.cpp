// libFuzzer target for the PROXY protocol codec (tests/fuzz.sh builds and runs it).
// Beyond "no crash, no sanitizer report" it checks the decoder's contract and aborts when
// one is broken:
// - a complete header is no longer than the input or the version's maximum;
// - the incremental contract: every proper prefix of a complete header is incomplete, and
//   the first prefix that is not incomplete gives the same answer as the whole input;
// - a parsed header with addresses re-encodes (either version) to one that parses back to
//   the same addresses;
// - addresses taken from the input bytes survive encode -> parse in both versions.

#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "fulcrum/proto/proxy_protocol.hpp"

using fulcrum::ProxyHeader;
using fulcrum::ProxyParse;
using fulcrum::ProxyVersion;
using Status = fulcrum::ProxyParse::Status;

namespace {

void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "invariant broken: %s\n", what);
        std::abort();
    }
}

// The address as IPv4-mapped IPv6 bytes plus the port, so IPv4 and mapped IPv6 compare equal.
struct Canonical {
    unsigned char bytes[16] = {};
    std::uint16_t port = 0;
    bool operator==(const Canonical& other) const {
        return port == other.port && std::memcmp(bytes, other.bytes, sizeof bytes) == 0;
    }
};

Canonical canonical(const sockaddr_storage& storage) {
    Canonical c;
    if (storage.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
        c.bytes[10] = c.bytes[11] = 0xff;
        std::memcpy(c.bytes + 12, &in->sin_addr, 4);
        c.port = in->sin_port;
    } else {
        require(storage.ss_family == AF_INET6, "address family is AF_INET or AF_INET6");
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
        std::memcpy(c.bytes, &in6->sin6_addr, 16);
        c.port = in6->sin6_port;
    }
    return c;
}

bool same_result(const ProxyParse& a, const ProxyParse& b) {
    if (a.status != b.status) return false;
    if (a.status != Status::complete) return true;
    if (a.length != b.length || a.version != b.version) return false;
    if (a.header.has_addresses != b.header.has_addresses) return false;
    if (!a.header.has_addresses) return true;
    return canonical(a.header.source) == canonical(b.header.source) &&
           canonical(a.header.destination) == canonical(b.header.destination);
}

// Encodes the addresses of `header` in both versions and checks they parse back unchanged.
void check_round_trip(const ProxyHeader& header) {
    const auto* source = reinterpret_cast<const sockaddr*>(&header.source);
    const auto* destination = reinterpret_cast<const sockaddr*>(&header.destination);
    for (const ProxyVersion version : {ProxyVersion::v1, ProxyVersion::v2}) {
        const std::string bytes = fulcrum::encode_proxy_header(version, source, destination);
        const ProxyParse again = fulcrum::parse_proxy_header(bytes);
        require(again.status == Status::complete, "an encoded header parses");
        require(again.length == bytes.size(), "an encoded header is parsed whole");
        require(again.version == version, "an encoded header keeps its version");
        require(again.header.has_addresses, "an encoded header keeps its addresses");
        require(canonical(again.header.source) == canonical(header.source), "source survives");
        require(canonical(again.header.destination) == canonical(header.destination),
                "destination survives");
    }
}

// An AF_INET or AF_INET6 sockaddr from the next input bytes.
sockaddr_storage endpoint_from(const std::uint8_t*& p) {
    sockaddr_storage storage{};
    const bool v6 = *p++ & 1;
    if (v6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
        in6->sin6_family = AF_INET6;
        std::memcpy(&in6->sin6_addr, p, 16);
        std::memcpy(&in6->sin6_port, p + 16, 2);
    } else {
        auto* in = reinterpret_cast<sockaddr_in*>(&storage);
        in->sin_family = AF_INET;
        std::memcpy(&in->sin_addr, p, 4);
        std::memcpy(&in->sin_port, p + 16, 2);
    }
    p += 18;
    return storage;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const ProxyParse whole = fulcrum::parse_proxy_header(input);

    if (whole.status == Status::complete) {
        require(whole.length <= size, "length within the input");
        require(whole.length <= (whole.version == ProxyVersion::v1 ? fulcrum::proxy_v1_max_header
                                                                   : fulcrum::proxy_v2_max_header),
                "length within the version's maximum");
        if (whole.header.has_addresses) check_round_trip(whole.header);
    }
    if (whole.status == Status::invalid) require(!whole.error.empty(), "invalid says why");

    // Incomplete parses are cheap (v1 <= 107 bytes, v2 only the fixed part), so walking the
    // prefixes up to the first answer stays linear in the header's length. Each prefix gets a
    // buffer of its own size, so AddressSanitizer sees a read past its end.
    for (std::size_t n = 0; n <= size; ++n) {
        const auto copy = std::make_unique<char[]>(n);
        if (n > 0) std::memcpy(copy.get(), data, n);
        const ProxyParse prefix = fulcrum::parse_proxy_header(std::string_view(copy.get(), n));
        if (prefix.status == Status::incomplete) continue;
        require(same_result(prefix, whole), "the first answer of a prefix holds for the whole");
        if (whole.status == Status::complete) {
            require(n == whole.length, "a complete header's proper prefixes are incomplete");
        }
        break;
    }

    // The encoder on arbitrary addresses: 2 x (family byte, 16 address bytes, 2 port bytes).
    if (size >= 38) {
        const std::uint8_t* p = data;
        const sockaddr_storage source = endpoint_from(p);
        const sockaddr_storage destination = endpoint_from(p);
        ProxyHeader header;
        header.has_addresses = true;
        header.source = source;
        header.destination = destination;
        check_round_trip(header);
    }
    return 0;
}
