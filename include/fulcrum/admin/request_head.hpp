#pragma once
// The limits on one admin request and the check of its head (request line and headers)
// as its bytes arrive, before cpp-httplib parses it: httplib 0.11 as built by Debian
// bounds neither a line's length, nor the header count, nor a body without
// Content-Length, so the admin endpoint lets it see only a complete head within these
// limits and exactly the body the head announces.

#include <cstddef>
#include <string_view>

namespace fulcrum {

struct RequestLimits {
    std::size_t max_request_line = 8 * 1024;  // bytes before its newline; past it 414
    std::size_t max_head = 16 * 1024;         // request line, headers and blank line; 431
    std::size_t max_headers = 64;             // header lines; 431
    std::size_t max_body = 4 * 1024;          // Content-Length; 413 (no endpoint reads one)
};

struct HeadCheck {
    enum class Verdict {
        incomplete,  // within the limits so far; read on
        complete,    // a whole head within the limits
        rejected,    // answer `status` and close
    };
    Verdict verdict = Verdict::incomplete;
    int status = 0;             // rejected: 400, 411, 413, 414 or 431
    std::string_view reason;    // rejected: why, for the log and the answer
    std::size_t head_size = 0;  // complete: bytes through the blank line
    std::size_t body_size = 0;  // complete: the Content-Length, 0 without one
};

// Checks the bytes received so far on a connection (they start with the request line).
// A body must have a Content-Length (Transfer-Encoding is refused with 411), so that a
// request's end is known before it is read.
HeadCheck check_request_head(std::string_view received, const RequestLimits& limits);

}  // namespace fulcrum
