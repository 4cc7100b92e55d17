// Pre-read phases: the parser interface and the driver that feeds it.
#include <catch2/catch.hpp>
#include <string>

#include "fulcrum/proto/preread.hpp"

using namespace fulcrum;

namespace {

// A phase that wants "HELLO <name>\n" and consumes it: the shape of any line protocol.
class HelloParser final : public PrereadParser {
public:
    std::string_view what() const override { return "hello line"; }
    std::size_t max_bytes() const override { return 16; }
    PrereadResult parse(std::string_view bytes, PrereadFindings&) const override {
        constexpr std::string_view prefix = "HELLO ";
        if (bytes.substr(0, prefix.size()) != prefix.substr(0, bytes.size())) {
            return {PrereadResult::Status::invalid, 0, "not a hello"};
        }
        const auto end = bytes.find('\n');
        if (end == std::string_view::npos) return {};
        return {PrereadResult::Status::complete, end + 1, {}};
    }
};

using Status = PrereadResult::Status;

}  // namespace

TEST_CASE("a pre-read phase decides over bytes as they arrive", "[preread]") {
    HelloParser parser;
    Preread preread(parser);
    PrereadFindings findings;
    CHECK(preread.room() == 16);
    CHECK(preread.feed("HEL", findings).status == Status::incomplete);
    CHECK(preread.room() == 13);
    CHECK(preread.feed("LO bo", findings).status == Status::incomplete);
    const PrereadResult done = preread.feed("b\nGET /", findings);
    CHECK(done.status == Status::complete);
    CHECK(done.consumed == 10);
    CHECK(preread.take_rest() == "GET /");  // the client's first bytes, for the backend
}

TEST_CASE("a pre-read phase rejects what cannot become valid, and what runs past its bound",
          "[preread]") {
    HelloParser parser;
    PrereadFindings findings;
    SECTION("invalid at once") {
        Preread preread(parser);
        const PrereadResult result = preread.feed("GET / HTTP/1.1\r\n", findings);
        CHECK(result.status == Status::invalid);
        CHECK(result.error == "not a hello");
    }
    SECTION("undecided at max_bytes") {
        Preread preread(parser);
        CHECK(preread.feed("HELLO 0123456789", findings).status == Status::invalid);
        CHECK(preread.room() == 0);
    }
    SECTION("a read never takes more than the room left") {
        Preread preread(parser);
        const PrereadResult result = preread.feed("HELLO 0123456789ABCDEF\n", findings);
        CHECK(result.status == Status::invalid);
        CHECK(result.error == "no complete hello line within 16 bytes");
    }
}

TEST_CASE("the PROXY header phase reports the addresses and consumes only the header",
          "[preread]") {
    ProxyHeaderParser parser;
    Preread preread(parser);
    PrereadFindings findings;
    CHECK(preread.feed("PROXY TCP4 192.0.2.1 ", findings).status == Status::incomplete);
    CHECK_FALSE(findings.proxy.has_value());
    const PrereadResult result = preread.feed("198.51.100.2 5000 80\r\nhello", findings);
    REQUIRE(result.status == Status::complete);
    REQUIRE(findings.proxy.has_value());
    CHECK(findings.proxy->has_addresses);
    CHECK(findings.proxy->source.ss_family == AF_INET);
    CHECK(preread.take_rest() == "hello");

    Preread bad(parser);
    PrereadFindings none;
    CHECK(bad.feed("GET / HTTP/1.1\r\n", none).status == Status::invalid);
    CHECK(parser.max_bytes() >= proxy_v2_max_header);
}
