#pragma once
// An IP network, "10.0.0.0/8" or "2001:db8::/32", and whether a peer's address is in it.
// IPv4 networks also match IPv4-mapped IPv6 peers ("::ffff:10.1.2.3"), as a dual-stack
// listener sees IPv4 clients.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fulcrum {

struct Cidr {
    std::array<std::uint8_t, 16> network{};  // IPv6 form; IPv4 as IPv4-mapped
    unsigned prefix_bits = 0;                // of the IPv6 form (an IPv4 /8 is 104)
    std::string text;                        // as written in the configuration

    bool contains(const sockaddr* address) const;
    bool operator==(const Cidr& other) const { return text == other.text; }
};

// "ip/len", or a bare "ip" for one host. Throws AddressError saying what is wrong,
// including host bits set below the prefix ("10.0.0.1/8": did you mean 10.0.0.0/8?).
Cidr parse_cidr(std::string_view text);

}  // namespace fulcrum
