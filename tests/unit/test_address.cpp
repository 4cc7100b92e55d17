#include <catch2/catch.hpp>

#include <string>

#include "fulcrum/config/address.hpp"

using Catch::Matchers::StartsWith;
using fulcrum::Address;
using fulcrum::AddressError;
using fulcrum::parse_address;

TEST_CASE("IPv4 address", "[address]") {
    const Address a = parse_address("127.0.0.1:8080");
    CHECK(a.family() == AF_INET);
    CHECK(a.port() == 8080);
    CHECK(a.length() == sizeof(sockaddr_in));
    CHECK(a.numeric() == "127.0.0.1:8080");
    CHECK(a.text == "127.0.0.1:8080");
}

TEST_CASE("IPv6 address in brackets", "[address]") {
    const Address a = parse_address("[::1]:443");
    CHECK(a.family() == AF_INET6);
    CHECK(a.port() == 443);
    CHECK(a.length() == sizeof(sockaddr_in6));
    CHECK(a.numeric() == "[::1]:443");

    CHECK(parse_address("[2001:db8:0:0::1]:80").numeric() == "[2001:db8::1]:80");
}

TEST_CASE("hostnames resolve at parse time", "[address]") {
    const Address a = parse_address("localhost:3001");
    CHECK(a.text == "localhost:3001");
    CHECK(a.port() == 3001);
    const std::string numeric = a.numeric();
    CHECK((numeric == "127.0.0.1:3001" || numeric == "[::1]:3001"));
}

TEST_CASE("port 0 and 65535 are in range", "[address]") {
    CHECK(parse_address("0.0.0.0:0").port() == 0);
    CHECK(parse_address("0.0.0.0:65535").port() == 65535);
}

TEST_CASE("bad addresses say what is wrong", "[address]") {
    auto error_of = [](const char* text) {
        try {
            parse_address(text);
        } catch (const AddressError& e) {
            return std::string(e.what());
        }
        FAIL("no error for " << text);
        return std::string();
    };
    CHECK(error_of("127.0.0.1") ==
          "missing port in '127.0.0.1' (expected host:port or [ipv6]:port)");
    CHECK(error_of("127.0.0.1:") ==
          "missing port in '127.0.0.1:' (expected host:port or [ipv6]:port)");
    CHECK(error_of("[::1]") == "missing port in '[::1]' (expected host:port or [ipv6]:port)");
    CHECK(error_of("[::1:80") == "missing ']' in '[::1:80' (expected host:port or [ipv6]:port)");
    CHECK(error_of(":80") == "missing host in ':80' (expected host:port or [ipv6]:port)");
    CHECK(error_of("127.0.0.1:70000") == "port 70000 is out of range (0-65535)");
    CHECK(error_of("127.0.0.1:99999999999999999999") ==
          "port 99999999999999999999 is out of range (0-65535)");
    CHECK(error_of("127.0.0.1:http") == "port 'http' is not a number");
    CHECK(error_of("127.0.0.1:-1") == "port '-1' is not a number");
    CHECK(error_of("::1:8080") ==
          "an IPv6 address must be written in brackets, e.g. [::1]:8080 (got '::1:8080')");
    CHECK(error_of("[localhost]:80") == "'localhost' is not an IPv6 address");
    CHECK(error_of("[127.0.0.1]:80") == "'127.0.0.1' is not an IPv6 address");
    CHECK_THAT(error_of("no-such-host.invalid:80"),
               StartsWith("cannot resolve host 'no-such-host.invalid': "));
}

TEST_CASE("equal addresses", "[address]") {
    CHECK(parse_address("127.0.0.1:1") == parse_address("127.0.0.1:1"));
    CHECK_FALSE(parse_address("127.0.0.1:1") == parse_address("127.0.0.1:2"));
}

TEST_CASE("format_sockaddr", "[address]") {
    sockaddr_storage unknown{};
    unknown.ss_family = AF_UNIX;
    CHECK(fulcrum::format_sockaddr(reinterpret_cast<const sockaddr*>(&unknown)) == "unknown");
    CHECK(fulcrum::format_sockaddr(parse_address("[::ffff:1.2.3.4]:5").sockaddr_ptr()) ==
          "[::ffff:1.2.3.4]:5");
}
