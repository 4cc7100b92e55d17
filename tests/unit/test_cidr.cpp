#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <string>

#include "fulcrum/config/address.hpp"
#include "fulcrum/config/cidr.hpp"

using Catch::Matchers::Contains;
using fulcrum::AddressError;
using fulcrum::Cidr;
using fulcrum::parse_address;
using fulcrum::parse_cidr;

namespace {

bool in(const Cidr& cidr, const std::string& endpoint) {
    return cidr.contains(parse_address(endpoint).sockaddr_ptr());
}

}  // namespace

TEST_CASE("IPv4 networks", "[cidr]") {
    const Cidr ten = parse_cidr("10.0.0.0/8");
    CHECK(in(ten, "10.0.0.1:1"));
    CHECK(in(ten, "10.255.255.255:1"));
    CHECK_FALSE(in(ten, "11.0.0.0:1"));
    CHECK_FALSE(in(ten, "9.255.255.255:1"));
    // A dual-stack listener sees IPv4 clients as IPv4-mapped IPv6 addresses.
    CHECK(in(ten, "[::ffff:10.1.2.3]:1"));
    CHECK_FALSE(in(ten, "[::ffff:11.1.2.3]:1"));
    CHECK_FALSE(in(ten, "[::1]:1"));

    const Cidr odd = parse_cidr("192.168.4.0/22");
    CHECK(in(odd, "192.168.7.255:1"));
    CHECK_FALSE(in(odd, "192.168.8.0:1"));
    CHECK_FALSE(in(odd, "192.168.3.255:1"));

    const Cidr host = parse_cidr("127.0.0.1");  // a bare address is one host
    CHECK(in(host, "127.0.0.1:80"));
    CHECK_FALSE(in(host, "127.0.0.2:80"));

    const Cidr all = parse_cidr("0.0.0.0/0");
    CHECK(in(all, "1.2.3.4:1"));
    CHECK(in(all, "[::ffff:1.2.3.4]:1"));
    CHECK_FALSE(in(all, "[2001:db8::1]:1"));  // every IPv4 address, no IPv6 one
}

TEST_CASE("IPv6 networks", "[cidr]") {
    const Cidr doc = parse_cidr("2001:db8::/32");
    CHECK(in(doc, "[2001:db8:ffff::1]:1"));
    CHECK_FALSE(in(doc, "[2001:db9::1]:1"));
    CHECK_FALSE(in(doc, "10.0.0.1:1"));

    const Cidr loopback = parse_cidr("::1");
    CHECK(in(loopback, "[::1]:1"));
    CHECK_FALSE(in(loopback, "127.0.0.1:1"));

    const Cidr nibble = parse_cidr("fe80::/10");
    CHECK(in(nibble, "[febf::1]:1"));
    CHECK_FALSE(in(nibble, "[fec0::1]:1"));

    const Cidr any = parse_cidr("::/0");
    CHECK(in(any, "[2001:db8::1]:1"));
    CHECK(in(any, "10.0.0.1:1"));  // IPv4 is within ::/0 as its mapped form
}

TEST_CASE("bad networks say what is wrong", "[cidr][errors]") {
    const auto error_of = [](const std::string& text) {
        try {
            parse_cidr(text);
        } catch (const AddressError& error) {
            return std::string(error.what());
        }
        FAIL(text << " parsed");
        return std::string();
    };
    CHECK(error_of("10.0.0.1/8") == "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?");
    CHECK(error_of("2001:db8::1/32") ==
          "'2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?");
    CHECK(error_of("10.0.0.0/33") == "prefix length '33' is not a number from 0 to 32");
    CHECK(error_of("::/129") == "prefix length '129' is not a number from 0 to 128");
    CHECK(error_of("10.0.0.0/") == "prefix length '' is not a number from 0 to 32");
    CHECK(error_of("10.0.0.0/+8") == "prefix length '+8' is not a number from 0 to 32");
    CHECK(error_of("10.0.0.0/8x") == "prefix length '8x' is not a number from 0 to 32");
    CHECK(error_of("10.0.0/8") == "'10.0.0' is not an IPv4 or IPv6 address");
    CHECK(error_of("") == "'' is not an IPv4 or IPv6 address");
    CHECK_THAT(error_of("localhost/8"), Contains("not an IPv4 or IPv6 address"));
}
