#include "fulcrum/config/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "fulcrum/config/address.hpp"  // AddressError

namespace fulcrum {
namespace {

using Bytes = std::array<std::uint8_t, 16>;

// The 16-byte form of an IPv4 address: ::ffff:a.b.c.d.
Bytes mapped(const in_addr& v4) {
    Bytes bytes{};
    bytes[10] = bytes[11] = 0xff;
    std::memcpy(bytes.data() + 12, &v4, 4);
    return bytes;
}

std::optional<Bytes> bytes_of(const sockaddr* address) {
    if (address->sa_family == AF_INET) {
        return mapped(reinterpret_cast<const sockaddr_in*>(address)->sin_addr);
    }
    if (address->sa_family == AF_INET6) {
        Bytes bytes;
        std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, 16);
        return bytes;
    }
    return std::nullopt;
}

// Clears every bit after the first `bits`.
Bytes masked(Bytes bytes, unsigned bits) {
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned keep = bits > i * 8 ? std::min(8u, bits - i * 8) : 0;
        bytes[i] &= static_cast<std::uint8_t>(0xff00u >> keep);
    }
    return bytes;
}

}  // namespace

bool Cidr::contains(const sockaddr* address) const {
    const std::optional<Bytes> bytes = bytes_of(address);
    return bytes && masked(*bytes, prefix_bits) == network;
}

Cidr parse_cidr(std::string_view text) {
    const std::size_t slash = text.find('/');
    const std::string ip(text.substr(0, slash));
    Cidr cidr;
    cidr.text = text;
    unsigned max_bits = 0;
    unsigned offset = 0;  // bits before the written address in the IPv6 form
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
        cidr.network = mapped(v4);
        max_bits = 32;
        offset = 96;
    } else if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
        std::memcpy(cidr.network.data(), &v6, 16);
        max_bits = 128;
    } else {
        throw AddressError(fmt::format("'{}' is not an IPv4 or IPv6 address", ip));
    }
    unsigned bits = max_bits;
    if (slash != std::string_view::npos) {
        const std::string_view length = text.substr(slash + 1);
        const auto [end, error] =
            std::from_chars(length.data(), length.data() + length.size(), bits);
        if (length.empty() || error != std::errc{} || end != length.data() + length.size() ||
            bits > max_bits) {
            throw AddressError(
                fmt::format("prefix length '{}' is not a number from 0 to {}", length, max_bits));
        }
    }
    cidr.prefix_bits = offset + bits;
    const Bytes network = masked(cidr.network, cidr.prefix_bits);
    if (network != cidr.network) {
        char host[INET6_ADDRSTRLEN] = {};
        inet_ntop(offset != 0 ? AF_INET : AF_INET6, network.data() + offset / 8, host, sizeof host);
        throw AddressError(
            fmt::format("'{}' has host bits set; did you mean {}/{}?", text, host, bits));
    }
    return cidr;
}

}  // namespace fulcrum
