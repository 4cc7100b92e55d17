#include "fulcrum/config/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace fulcrum {
namespace {

constexpr std::string_view forms = "expected host:port or [ipv6]:port";

std::uint16_t parse_port(std::string_view whole, std::string_view port) {
    if (port.empty()) throw AddressError(fmt::format("missing port in '{}' ({})", whole, forms));
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (error == std::errc::result_out_of_range || (error == std::errc{} && value > 65535)) {
        throw AddressError(fmt::format("port {} is out of range (0-65535)", port));
    }
    if (error != std::errc{} || end != port.data() + port.size()) {
        throw AddressError(fmt::format("port '{}' is not a number", port));
    }
    return static_cast<std::uint16_t>(value);
}

// The first address getaddrinfo gives for `host` (its preferred order, as other clients use);
// `flags` may demand a numeric host.
Address resolve(std::string_view text, const std::string& host, std::uint16_t port, int family,
                int flags) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
        if (flags & AI_NUMERICHOST) {
            throw AddressError(fmt::format("'{}' is not an IPv6 address", host));
        }
        throw AddressError(fmt::format("cannot resolve host '{}': {}", host, gai_strerror(rc)));
    }
    const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(found, freeaddrinfo);
    Address address;
    std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
    address.text = text;
    return address;
}

}  // namespace

socklen_t Address::length() const {
    return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::uint16_t Address::port() const {
    if (family() == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string Address::ip() const {
    return format_ip(sockaddr_ptr());
}

std::string Address::numeric() const {
    return format_sockaddr(sockaddr_ptr());
}

bool Address::operator==(const Address& other) const {
    return text == other.text && numeric() == other.numeric();
}

std::string parse_http_endpoint(std::string_view text) {
    constexpr std::string_view scheme = "http://";
    if (!text.starts_with(scheme)) {
        throw AddressError(
            fmt::format("'{}' must start with http:// (https is not supported)", text));
    }
    const std::string_view host_port = text.substr(scheme.size());
    const std::size_t colon = host_port.rfind(':');
    if (host_port.find('/') != std::string_view::npos || colon == std::string_view::npos ||
        colon == 0) {
        throw AddressError(
            fmt::format("'{}' must be http://host:port, e.g. http://127.0.0.1:2379", text));
    }
    if (parse_port(text, host_port.substr(colon + 1)) == 0) {
        throw AddressError(fmt::format("'{}': port 0 is not allowed (use 1-65535)", text));
    }
    return std::string(text);
}

Address parse_address(std::string_view text) {
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            throw AddressError(fmt::format("missing ']' in '{}' ({})", text, forms));
        }
        const std::string_view rest = text.substr(close + 1);
        if (!rest.starts_with(':')) {
            throw AddressError(fmt::format("missing port in '{}' ({})", text, forms));
        }
        const std::uint16_t port = parse_port(text, rest.substr(1));
        return resolve(text, std::string(text.substr(1, close - 1)), port, AF_INET6,
                       AI_NUMERICHOST);
    }

    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        throw AddressError(fmt::format("missing port in '{}' ({})", text, forms));
    }
    const std::string_view host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
        throw AddressError(fmt::format(
            "an IPv6 address must be written in brackets, e.g. [::1]:8080 (got '{}')", text));
    }
    if (host.empty()) throw AddressError(fmt::format("missing host in '{}' ({})", text, forms));
    const std::uint16_t port = parse_port(text, text.substr(colon + 1));
    return resolve(text, std::string(host), port, AF_UNSPEC, 0);
}

void SocketAddress::assign(const sockaddr* address) {
    storage = {};
    if (address->sa_family == AF_INET) {
        std::memcpy(&storage, address, sizeof(sockaddr_in));
    } else if (address->sa_family == AF_INET6) {
        std::memcpy(&storage, address, sizeof(sockaddr_in6));
    }
}

std::string format_ip(const sockaddr* sa) {
    char host[INET6_ADDRSTRLEN] = {};
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, host, sizeof host);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, host,
                  sizeof host);
    } else {
        return "unknown";
    }
    return host;
}

std::string format_sockaddr(const sockaddr* sa) {
    if (sa->sa_family == AF_INET) {
        return fmt::format("{}:{}", format_ip(sa),
                           ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        return fmt::format("[{}]:{}", format_ip(sa),
                           ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port));
    }
    return "unknown";
}

}  // namespace fulcrum
