// The check of an admin request head as its bytes arrive: complete heads and their body
// size, heads still arriving, and each limit with the status it earns.

#include <catch2/catch.hpp>
#include <string>

#include "fulcrum/admin/request_head.hpp"

using namespace fulcrum;
using Verdict = HeadCheck::Verdict;

namespace {

const RequestLimits limits{
    .max_request_line = 32, .max_head = 128, .max_headers = 3, .max_body = 10};

int status_of(const std::string& received) {
    const HeadCheck check = check_request_head(received, limits);
    REQUIRE(check.verdict == Verdict::rejected);
    return check.status;
}

}  // namespace

TEST_CASE("a complete head gives its size and the body it announces", "[request_head]") {
    const std::string head = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    const HeadCheck plain = check_request_head(head + "next bytes", limits);
    CHECK(plain.verdict == Verdict::complete);
    CHECK(plain.head_size == head.size());
    CHECK(plain.body_size == 0);

    const HeadCheck bare = check_request_head("GET / HTTP/1.1\r\n\r\n", limits);
    CHECK(bare.verdict == Verdict::complete);
    CHECK(bare.head_size == 18);

    const HeadCheck with_body =
        check_request_head("POST /x HTTP/1.1\r\ncontent-LENGTH:  10 \r\n\r\n", limits);
    CHECK(with_body.verdict == Verdict::complete);
    CHECK(with_body.body_size == 10);
    // The same length twice is one length.
    CHECK(check_request_head("POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                             limits)
              .body_size == 3);
}

TEST_CASE("a head within the limits but not ended is read on", "[request_head]") {
    for (const char* partial : {"", "GET /sta", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHo",
                                "GET / HTTP/1.1\r\nHost: x\r\n\r"}) {
        INFO(partial);
        CHECK(check_request_head(partial, limits).verdict == Verdict::incomplete);
    }
}

TEST_CASE("each limit earns its status, as soon as it is passed", "[request_head]") {
    // Request line: 32 bytes before its newline at most, ended or not.
    CHECK(check_request_head(std::string(32, 'a'), limits).verdict == Verdict::incomplete);
    CHECK(status_of(std::string(33, 'a')) == 414);
    CHECK(status_of(std::string(33, 'a') + "\r\n\r\n") == 414);
    // The whole head: 128 bytes, ended or not.
    const std::string line = "GET / HTTP/1.1\r\n";
    const std::string big = "X: " + std::string(100, 'v') + "\r\n";
    CHECK(status_of(line + big + big) == 431);
    CHECK(status_of(line + big + std::string(20, 'v') + "\r\n\r\n") == 431);
    // Header lines: three at most, counted before the head ends.
    CHECK(check_request_head(line + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits).verdict ==
          Verdict::complete);
    CHECK(status_of(line + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n") == 431);
    // Bodies: 10 bytes at most, with a Content-Length only.
    CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n") == 413);
    CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 411);
}

TEST_CASE("a malformed or contradicting Content-Length is a bad request", "[request_head]") {
    for (const char* value : {"", "abc", "-1", "+1", "1,1", "1 1", "0x1"}) {
        INFO(value);
        CHECK(status_of(std::string("POST / HTTP/1.1\r\nContent-Length: ") + value + "\r\n\r\n") ==
              400);
    }
    CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == 400);
}
