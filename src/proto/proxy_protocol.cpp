#include "fulcrum/proto/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

namespace fulcrum {
namespace {

constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t v2_fixed = 16;  // signature, version/command, family, length

// v2 byte 13: version in the high nibble, command in the low one.
constexpr unsigned v2_version = 0x2;
constexpr unsigned v2_local = 0x0;
constexpr unsigned v2_proxy = 0x1;

// v2 byte 14: address family in the high nibble, transport in the low one.
constexpr unsigned char family_unspec = 0x00;
constexpr unsigned char family_tcp4 = 0x11;
constexpr unsigned char family_udp4 = 0x12;
constexpr unsigned char family_tcp6 = 0x21;
constexpr unsigned char family_udp6 = 0x22;
constexpr unsigned char family_unix_stream = 0x31;
constexpr unsigned char family_unix_dgram = 0x32;

constexpr std::size_t v2_inet_block = 12;   // 2 x 4 address bytes + 2 x 2 port bytes
constexpr std::size_t v2_inet6_block = 36;  // 2 x 16 + 2 x 2
constexpr std::size_t v2_unix_block = 216;  // 2 x 108 path bytes
constexpr std::size_t v2_tlv_header = 3;    // type, 2 length bytes

constexpr std::size_t max_ipv4_text = 15;  // "255.255.255.255"
constexpr std::size_t max_ipv6_text = 45;  // INET6_ADDRSTRLEN without the NUL

// One side of a connection, the address in network byte order.
struct Endpoint {
    int family = AF_UNSPEC;  // AF_INET or AF_INET6 once read
    std::array<unsigned char, 16> address{};
    std::uint16_t port = 0;  // host byte order
};

std::optional<Endpoint> endpoint_of(const sockaddr* sa) {
    if (sa == nullptr) return std::nullopt;
    Endpoint e;
    e.family = sa->sa_family;
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        std::memcpy(e.address.data(), &in->sin_addr, 4);
        e.port = ntohs(in->sin_port);
        return e;
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        std::memcpy(e.address.data(), &in6->sin6_addr, 16);
        e.port = ntohs(in6->sin6_port);
        return e;
    }
    return std::nullopt;
}

bool is_v4_mapped(const Endpoint& e) {
    constexpr std::array<unsigned char, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return e.family == AF_INET6 && std::equal(mapped.begin(), mapped.end(), e.address.begin());
}

Endpoint narrowed(const Endpoint& mapped) {
    Endpoint e;
    e.family = AF_INET;
    std::copy_n(mapped.address.begin() + 12, 4, e.address.begin());
    e.port = mapped.port;
    return e;
}

Endpoint widened(const Endpoint& v4) {
    Endpoint e;
    e.family = AF_INET6;
    e.address[10] = 0xff;
    e.address[11] = 0xff;
    std::copy_n(v4.address.begin(), 4, e.address.begin() + 12);
    e.port = v4.port;
    return e;
}

// Brings a mixed IPv4/IPv6 pair to one family.
void unify(Endpoint& a, Endpoint& b) {
    if (a.family == b.family) return;
    Endpoint& v6 = a.family == AF_INET6 ? a : b;
    Endpoint& v4 = a.family == AF_INET6 ? b : a;
    if (is_v4_mapped(v6)) {
        v6 = narrowed(v6);
    } else {
        v4 = widened(v4);
    }
}

sockaddr_storage to_sockaddr(const Endpoint& e) {
    sockaddr_storage storage{};
    if (e.family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(e.port);
        std::memcpy(&in->sin_addr, e.address.data(), 4);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(e.port);
        std::memcpy(&in6->sin6_addr, e.address.data(), 16);
    }
    return storage;
}

std::size_t address_size(int family) {
    return family == AF_INET ? 4 : 16;
}

void append_u16(std::string& out, std::uint16_t value) {
    out.push_back(static_cast<char>(value >> 8));
    out.push_back(static_cast<char>(value & 0xff));
}

std::uint16_t read_u16(std::string_view data, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(data[at]) << 8 |
                                      static_cast<unsigned char>(data[at + 1]));
}

std::string v2_header(unsigned command, unsigned char family, std::size_t body) {
    std::string out(v2_signature);
    out.push_back(static_cast<char>(v2_version << 4 | command));
    out.push_back(static_cast<char>(family));
    append_u16(out, static_cast<std::uint16_t>(body));
    return out;
}

std::string encode_v1(const Endpoint& source, const Endpoint& destination) {
    char src[INET6_ADDRSTRLEN] = {};
    char dst[INET6_ADDRSTRLEN] = {};
    inet_ntop(source.family, source.address.data(), src, sizeof src);
    inet_ntop(destination.family, destination.address.data(), dst, sizeof dst);
    std::string out(v1_prefix);
    out += source.family == AF_INET ? "TCP4 " : "TCP6 ";
    out += src;
    out += ' ';
    out += dst;
    out += ' ';
    out += std::to_string(source.port);
    out += ' ';
    out += std::to_string(destination.port);
    out += "\r\n";
    return out;
}

std::string encode_v2(const Endpoint& source, const Endpoint& destination) {
    const bool v4 = source.family == AF_INET;
    std::string out =
        v2_header(v2_proxy, v4 ? family_tcp4 : family_tcp6, v4 ? v2_inet_block : v2_inet6_block);
    const std::size_t size = address_size(source.family);
    out.append(reinterpret_cast<const char*>(source.address.data()), size);
    out.append(reinterpret_cast<const char*>(destination.address.data()), size);
    append_u16(out, source.port);
    append_u16(out, destination.port);
    return out;
}

ProxyParse invalid(std::string error) {
    ProxyParse result;
    result.status = ProxyParse::Status::invalid;
    result.error = std::move(error);
    return result;
}

ProxyParse complete(ProxyVersion version, std::size_t length, ProxyHeader header) {
    ProxyParse result;
    result.status = ProxyParse::Status::complete;
    result.version = version;
    result.length = length;
    result.header = header;
    return result;
}

// Whether `data` and `signature` agree on the bytes both have.
bool agrees_with(std::string_view data, std::string_view signature) {
    const std::size_t n = std::min(data.size(), signature.size());
    return data.substr(0, n) == signature.substr(0, n);
}

// --- v1 -------------------------------------------------------------------------------

// A decimal port, 0..65535, without sign or leading zero (HAProxy is as strict).
std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5) return std::nullopt;
    if (text.size() > 1 && text[0] == '0') return std::nullopt;
    unsigned value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

// Every prefix of a valid port is empty or itself a valid port.
bool could_become_port(std::string_view text) {
    return text.empty() || parse_port(text).has_value();
}

// Whether `text` may be the start of an address of `family`: allowed characters and length.
bool could_become_ip(std::string_view text, int family) {
    const bool v4 = family == AF_INET;
    if (text.size() > (v4 ? max_ipv4_text : max_ipv6_text)) return false;
    return std::all_of(text.begin(), text.end(), [v4](char c) {
        const bool digit = c >= '0' && c <= '9';
        if (v4) return digit || c == '.';
        return digit || c == '.' || c == ':' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

std::optional<Endpoint> parse_ip(std::string_view text, int family) {
    // inet_pton stops at a NUL: only allowed characters may reach it.
    if (!could_become_ip(text, family)) return std::nullopt;
    std::array<char, max_ipv6_text + 1> buffer{};
    std::copy(text.begin(), text.end(), buffer.begin());
    Endpoint e;
    e.family = family;
    if (inet_pton(family, buffer.data(), e.address.data()) != 1) return std::nullopt;
    return e;
}

constexpr std::array<std::string_view, 4> v1_fields = {"source address", "destination address",
                                                       "source port", "destination port"};

// Checks `body`, the line after "PROXY " and before the CRLF. `partial`: the CRLF has not
// arrived, so `body` need only be able to start a valid line. Returns an error, or nothing
// with `header` filled in when the line is whole.
std::optional<std::string> check_v1_line(std::string_view body, bool partial, ProxyHeader& header) {
    constexpr std::string_view unknown = "UNKNOWN";
    if (body.starts_with(unknown)) return std::nullopt;  // the rest of the line is ignored
    if (partial && unknown.starts_with(body)) return std::nullopt;

    const std::size_t space = body.find(' ');
    const std::string_view protocol = body.substr(0, space);
    int family = AF_UNSPEC;
    if (protocol == "TCP4") {
        family = AF_INET;
    } else if (protocol == "TCP6") {
        family = AF_INET6;
    } else if (partial && space == std::string_view::npos &&
               (std::string_view("TCP4").starts_with(protocol) ||
                std::string_view("TCP6").starts_with(protocol))) {
        return std::nullopt;
    } else {
        return "v1: protocol is not TCP4, TCP6 or UNKNOWN";
    }
    if (space == std::string_view::npos) {
        if (partial) return std::nullopt;
        return "v1: missing addresses and ports";
    }

    std::array<std::string_view, v1_fields.size()> fields;
    std::size_t count = 0;
    const std::string_view rest = body.substr(space + 1);
    for (std::size_t start = 0;;) {
        if (count == fields.size()) return "v1: extra data after the destination port";
        const std::size_t end = rest.find(' ', start);
        const std::string_view field = rest.substr(start, end - start);
        const bool open = partial && end == std::string_view::npos;  // more of it may follow
        const std::string name(v1_fields[count]);
        if (field.empty() && !open) {
            return "v1: empty " + name + " (fields take exactly one space between them)";
        }
        const bool ok =
            count < 2
                ? (open ? could_become_ip(field, family) : parse_ip(field, family).has_value())
                : (open ? could_become_port(field) : parse_port(field).has_value());
        if (!ok) return "v1: bad " + name + " for " + std::string(protocol);
        fields[count++] = field;
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    if (partial) return std::nullopt;
    if (count < fields.size()) return "v1: missing " + std::string(v1_fields[count]);

    Endpoint source = *parse_ip(fields[0], family);
    Endpoint destination = *parse_ip(fields[1], family);
    source.port = *parse_port(fields[2]);
    destination.port = *parse_port(fields[3]);
    header.has_addresses = true;
    header.source = to_sockaddr(source);
    header.destination = to_sockaddr(destination);
    return std::nullopt;
}

// `data` starts with the whole "PROXY " prefix.
ProxyParse parse_v1(std::string_view data) {
    constexpr std::size_t no_crlf = std::string_view::npos;
    const std::string_view window = data.substr(0, proxy_v1_max_header);
    const std::size_t end = window.find_first_of("\r\n");
    const std::string_view body =
        data.substr(v1_prefix.size(), std::min(end, data.size()) - v1_prefix.size());
    ProxyHeader header;
    if (end != no_crlf && data[end] == '\n') return invalid("v1: LF without CR");
    if (end == no_crlf ? data.size() >= proxy_v1_max_header : end + 2 > proxy_v1_max_header) {
        return invalid("v1: no CRLF within 107 bytes");
    }
    if (end == no_crlf || end + 1 == data.size()) {  // no line end yet, or a CR without its LF
        if (auto error = check_v1_line(body, true, header)) return invalid(std::move(*error));
        return {};
    }
    if (data[end + 1] != '\n') return invalid("v1: CR not followed by LF");
    if (auto error = check_v1_line(body, false, header)) return invalid(std::move(*error));
    return complete(ProxyVersion::v1, end + 2, header);
}

// --- v2 -------------------------------------------------------------------------------

// The address block a PROXY command needs for `family`, or nothing for an undefined byte.
std::optional<std::size_t> v2_address_block(unsigned char family) {
    switch (family) {
        case family_unspec:
            return 0;
        case family_tcp4:
        case family_udp4:
            return v2_inet_block;
        case family_tcp6:
        case family_udp6:
            return v2_inet6_block;
        case family_unix_stream:
        case family_unix_dgram:
            return v2_unix_block;
        default:
            return std::nullopt;
    }
}

std::string hex(unsigned char byte) {
    constexpr std::string_view digits = "0123456789abcdef";
    return {'0', 'x', digits[byte >> 4], digits[byte & 0xf]};
}

// Reads one address pair of a PROXY block: addresses then ports, as the spec lays them out.
ProxyHeader read_v2_addresses(std::string_view block, int family) {
    const std::size_t size = address_size(family);
    Endpoint source;
    Endpoint destination;
    source.family = destination.family = family;
    std::memcpy(source.address.data(), block.data(), size);
    std::memcpy(destination.address.data(), block.data() + size, size);
    source.port = read_u16(block, 2 * size);
    destination.port = read_u16(block, 2 * size + 2);
    ProxyHeader header;
    header.has_addresses = true;
    header.source = to_sockaddr(source);
    header.destination = to_sockaddr(destination);
    return header;
}

// `data` starts with the whole 12-byte signature. The fixed fields are checked as soon as
// they arrive, so a bad header is rejected without waiting for its body.
ProxyParse parse_v2(std::string_view data) {
    const std::size_t signature = v2_signature.size();
    unsigned command = v2_local;
    if (data.size() > signature) {
        const auto version_command = static_cast<unsigned char>(data[signature]);
        if (version_command >> 4 != v2_version) {
            return invalid("v2: version " + std::to_string(version_command >> 4) + ", expected 2");
        }
        command = version_command & 0xfu;
        if (command != v2_local && command != v2_proxy) {
            return invalid("v2: unknown command " + std::to_string(command));
        }
    }
    std::size_t block = 0;  // the address block in front of the TLVs
    unsigned char family = family_unspec;
    if (data.size() > signature + 1 && command == v2_proxy) {
        family = static_cast<unsigned char>(data[signature + 1]);
        const auto needed = v2_address_block(family);
        if (!needed) return invalid("v2: unknown address family/protocol " + hex(family));
        block = *needed;
    }
    if (data.size() < v2_fixed) return {};

    const std::size_t length = read_u16(data, signature + 2);
    if (length > proxy_v2_max_header - v2_fixed) {
        return invalid("v2: length " + std::to_string(length) + " over the limit of " +
                       std::to_string(proxy_v2_max_header - v2_fixed));
    }
    if (length < block) {
        return invalid("v2: length " + std::to_string(length) + " too short for family " +
                       hex(family) + " (needs " + std::to_string(block) + ")");
    }
    const std::size_t total = v2_fixed + length;
    if (data.size() < total) return {};
    if (command == v2_local) return complete(ProxyVersion::v2, total, {});

    // TLVs follow the addresses: their types are not interpreted, but each must fit.
    for (std::size_t at = v2_fixed + block; at < total;) {
        if (total - at < v2_tlv_header) return invalid("v2: truncated TLV header");
        const std::size_t value = read_u16(data, at + 1);
        if (total - at - v2_tlv_header < value) return invalid("v2: TLV longer than the header");
        at += v2_tlv_header + value;
    }
    const std::string_view addresses = data.substr(v2_fixed, block);
    switch (family) {
        case family_tcp4:
            return complete(ProxyVersion::v2, total, read_v2_addresses(addresses, AF_INET));
        case family_tcp6:
            return complete(ProxyVersion::v2, total, read_v2_addresses(addresses, AF_INET6));
        default:  // UNSPEC, UNIX, and DGRAM (fulcrum is TCP): use the connection's addresses
            return complete(ProxyVersion::v2, total, {});
    }
}

}  // namespace

std::string_view to_string(ProxyVersion v) {
    return v == ProxyVersion::v1 ? "v1" : "v2";
}

std::string encode_proxy_header(ProxyVersion version, const sockaddr* source,
                                const sockaddr* destination) {
    auto from = endpoint_of(source);
    auto to = endpoint_of(destination);
    if (!from || !to) {
        return version == ProxyVersion::v1 ? "PROXY UNKNOWN\r\n"
                                           : v2_header(v2_proxy, family_unspec, 0);
    }
    unify(*from, *to);
    return version == ProxyVersion::v1 ? encode_v1(*from, *to) : encode_v2(*from, *to);
}

std::string encode_proxy_local(ProxyVersion version) {
    return version == ProxyVersion::v1 ? "PROXY UNKNOWN\r\n"
                                       : v2_header(v2_local, family_unspec, 0);
}

ProxyParse parse_proxy_header(std::string_view data) {
    if (data.empty()) return {};
    const bool v1 = data[0] == v1_prefix[0];
    const std::string_view signature = v1 ? v1_prefix : v2_signature;
    if (!agrees_with(data, signature)) return invalid("not a PROXY protocol header");
    if (data.size() < signature.size()) return {};
    return v1 ? parse_v1(data) : parse_v2(data);
}

}  // namespace fulcrum
