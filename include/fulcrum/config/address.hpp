#pragma once
// A TCP endpoint: "host:port" or "[v6]:port". Hostnames are resolved once, when the
// configuration is loaded, so the data path never waits on DNS.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fulcrum {

class AddressError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Address {
    sockaddr_storage storage{};
    std::string text;  // as written in the configuration

    const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage); }
    socklen_t length() const;
    int family() const { return storage.ss_family; }
    std::uint16_t port() const;
    // Numeric form, "127.0.0.1:8080" or "[::1]:8080".
    std::string numeric() const;
    // The IP alone, "127.0.0.1" or "::1".
    std::string ip() const;

    // Same text and same resolved endpoint.
    bool operator==(const Address& other) const;
};

// An IPv4 or IPv6 socket address in 28 bytes, where sockaddr_storage takes 128: every
// session keeps a few of them.
struct SocketAddress {
    sockaddr_in6 storage{};  // AF_UNSPEC until set; large enough for a sockaddr_in

    sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    // Copies an AF_INET or AF_INET6 address; any other leaves this AF_UNSPEC.
    void assign(const sockaddr* address);
};

// Throws AddressError with a message that says what is wrong ("missing port",
// "port out of range", "cannot resolve host 'x': ...").
Address parse_address(std::string_view text);

// An HTTP endpoint, "http://host:port" (an etcd member's client URL), checked and
// returned as written: the host is resolved by whoever connects. Throws AddressError.
std::string parse_http_endpoint(std::string_view text);

// Numeric "ip:port" / "[ip]:port" for any AF_INET/AF_INET6 sockaddr; "unknown" otherwise.
std::string format_sockaddr(const sockaddr* sa);
// The numeric IP alone ("127.0.0.1", "::1").
std::string format_ip(const sockaddr* sa);

}  // namespace fulcrum
