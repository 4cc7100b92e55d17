// The TLS ClientHello reader: real hellos from openssl and curl, split at every byte and
// over several records, larger than a segment, truncated, malformed, SSLv2.
#include <catch2/catch.hpp>
#include <string>

#include "fulcrum/proto/preread.hpp"
#include "fulcrum/proto/tls_client_hello.hpp"

#include "../support/client_hello.hpp"

using namespace fulcrum;
using fulcrum::test::captured_client_hello;
using fulcrum::test::fragmented;
using fulcrum::test::with_padding;
using Status = ClientHelloParse::Status;

namespace {

std::optional<std::string> name_of(const std::string& hello) {
    const ClientHelloParse parse = parse_client_hello(hello);
    REQUIRE(parse.status == Status::complete);
    REQUIRE(parse.hello.tls);
    return parse.hello.server_name;
}

// Feeds `hello` through the pre-read driver in two parts split at every byte, then a
// byte at a time: incomplete until the last byte, then complete with nothing consumed.
void check_every_split(const std::string& hello, const std::optional<std::string>& name) {
    const ClientHelloReader reader;
    for (std::size_t split = 1; split < hello.size(); ++split) {
        Preread preread(reader);
        PrereadFindings findings;
        REQUIRE(preread.feed(std::string_view(hello).substr(0, split), findings).status ==
                PrereadResult::Status::incomplete);
        const PrereadResult done = preread.feed(std::string_view(hello).substr(split), findings);
        INFO("split at " << split);
        REQUIRE(done.status == PrereadResult::Status::complete);
        REQUIRE(findings.client_hello);
        CHECK(findings.client_hello->server_name == name);
        CHECK(preread.take_rest() == hello);  // nothing consumed: all of it goes on
    }
    Preread preread(reader);
    PrereadFindings findings;
    for (std::size_t i = 0; i + 1 < hello.size(); ++i) {
        REQUIRE(preread.feed(hello.substr(i, 1), findings).status ==
                PrereadResult::Status::incomplete);
    }
    REQUIRE(preread.feed(hello.substr(hello.size() - 1), findings).status ==
            PrereadResult::Status::complete);
    CHECK(findings.client_hello->server_name == name);
}

}  // namespace

TEST_CASE("captured ClientHellos give their server name, canonical", "[tls]") {
    CHECK(name_of(captured_client_hello("openssl-tls13-sni.bin")) == "api.example.test");
    // s_client sent "Www.Apps.Example.Test.": lowercased, trailing dot dropped.
    CHECK(name_of(captured_client_hello("openssl-tls12-sni.bin")) == "www.apps.example.test");
    CHECK(name_of(captured_client_hello("openssl-tls10-sni.bin")) == "old.example.test");
    CHECK(name_of(captured_client_hello("curl-sni.bin")) == "api.example.test");
    CHECK(name_of(captured_client_hello("openssl-no-sni.bin")) == std::nullopt);
}

TEST_CASE("a ClientHello split at any byte, over TCP segments or TLS records", "[tls]") {
    const std::string tls13 = captured_client_hello("openssl-tls13-sni.bin");
    check_every_split(tls13, "api.example.test");
    check_every_split(captured_client_hello("openssl-tls12-sni.bin"), "www.apps.example.test");
    check_every_split(captured_client_hello("openssl-no-sni.bin"), std::nullopt);
    for (const std::size_t chunk : {1, 3, 4, 5, 100}) {
        INFO("records of " << chunk << " bytes");
        check_every_split(fragmented(tls13, chunk), "api.example.test");
    }
}

TEST_CASE("a ClientHello larger than a TCP segment (padding), up to 16 KiB", "[tls]") {
    const std::string tls13 = captured_client_hello("openssl-tls13-sni.bin");
    const std::string large = with_padding(tls13, 1800);
    REQUIRE(large.size() > 2000);
    check_every_split(large, "api.example.test");
    // Over two records, as a post-quantum key share makes it.
    CHECK(name_of(fragmented(with_padding(tls13, 14000), 9000)) == "api.example.test");
    // Past the bound: refused as soon as the length says so.
    const std::string huge = with_padding(tls13, client_hello_max_bytes);
    CHECK(parse_client_hello(huge.substr(0, 12)).status == Status::invalid);
    // Fragments whose headers take it past the bound fail at the bound.
    const ClientHelloReader reader;
    Preread preread(reader);
    PrereadFindings findings;
    const std::string tiny_records = fragmented(with_padding(tls13, 12000), 1);
    const PrereadResult result = preread.feed(tiny_records, findings);
    CHECK(result.status == PrereadResult::Status::invalid);
}

TEST_CASE("bytes after the ClientHello are forwarded, not parsed", "[tls]") {
    const std::string hello = captured_client_hello("openssl-tls13-sni.bin");
    CHECK(name_of(hello + "\x17\x03\x03garbage") == "api.example.test");
}

TEST_CASE("truncated ClientHellos are incomplete, never complete", "[tls]") {
    const std::string hello = captured_client_hello("curl-sni.bin");
    for (std::size_t size = 0; size < hello.size(); ++size) {
        INFO("first " << size << " bytes");
        CHECK(parse_client_hello(hello.substr(0, size)).status == Status::incomplete);
    }
}

TEST_CASE("malformed records and ClientHellos are invalid", "[tls]") {
    const std::string hello = captured_client_hello("openssl-tls13-sni.bin");
    auto with = [&](std::size_t at, char value) {
        std::string bad = hello;
        bad[at] = value;
        return parse_client_hello(bad);
    };
    CHECK(with(1, 0x02).status == Status::invalid);  // record version not 3.x
    CHECK(parse_client_hello("\x16\x02").status == Status::invalid);
    CHECK(with(5, 0x02).status == Status::invalid);  // a ServerHello
    CHECK(with(9, 0x04).status == Status::invalid);  // ClientHello version 4.x
    // A zero-length record, a record over 2^14 bytes.
    CHECK(parse_client_hello(std::string("\x16\x03\x01\x00\x00", 5)).status == Status::invalid);
    CHECK(parse_client_hello(std::string("\x16\x03\x01\x40\x01", 5)).status == Status::invalid);
    // An alert where the rest of a fragmented hello should be.
    const std::string split = fragmented(hello, 100);
    std::string alert = split.substr(0, 105) + std::string("\x15\x03\x03\x00\x02\x02\x28", 7);
    CHECK(parse_client_hello(alert).status == Status::invalid);
    // The handshake length one byte longer than the extensions fill... and shorter.
    std::string longer = hello;
    longer[8] = static_cast<char>(longer[8] - 1);
    CHECK(parse_client_hello(longer).status == Status::invalid);
    // A server name that is not a host name.
    const std::size_t at = hello.find("api.example.test");
    REQUIRE(at != std::string::npos);
    CHECK(with(at + 3, '/').status == Status::invalid);
    CHECK(with(at + 3, '\0').status == Status::invalid);
    // Its length running past the extension.
    CHECK(with(at - 1, 0x7f).status == Status::invalid);
}

TEST_CASE("an SSLv2-compatible hello is TLS without a server name; other bytes are not TLS",
          "[tls]") {
    // SSLv2 CLIENT-HELLO announcing TLS 1.0 (RFC 5246 E.2).
    const std::string sslv2("\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10", 11);
    ClientHelloParse parse = parse_client_hello(sslv2.substr(0, 3));
    CHECK(parse.status == Status::incomplete);
    parse = parse_client_hello(sslv2);
    REQUIRE(parse.status == Status::complete);
    CHECK(parse.hello.tls);
    CHECK_FALSE(parse.hello.server_name);

    for (const std::string plain : {"GET / HTTP/1.1\r\n", "S", "\x80\x10\x05\x03"}) {
        parse = parse_client_hello(plain);
        REQUIRE(parse.status == Status::complete);
        CHECK_FALSE(parse.hello.tls);
    }
    CHECK(parse_client_hello("").status == Status::incomplete);
}
