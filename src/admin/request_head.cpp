#include "fulcrum/admin/request_head.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

namespace fulcrum {

namespace {

HeadCheck rejected(int status, std::string_view reason) {
    HeadCheck check;
    check.verdict = HeadCheck::Verdict::rejected;
    check.status = status;
    check.reason = reason;
    return check;
}

bool is_named(std::string_view name, std::string_view lowercase) {
    return std::equal(name.begin(), name.end(), lowercase.begin(), lowercase.end(),
                      [](char a, char b) { return (a >= 'A' && a <= 'Z' ? a + 32 : a) == b; });
}

std::string_view trimmed(std::string_view text) {
    const std::size_t first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t\r") + 1 - first);
}

// Digits only: no sign, no spaces inside, no list.
std::optional<std::uint64_t> content_length(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

HeadCheck check_request_head(std::string_view received, const RequestLimits& limits) {
    const std::size_t line_end = received.find('\n');
    const std::size_t line_size = line_end == std::string_view::npos ? received.size() : line_end;
    if (line_size > limits.max_request_line) return rejected(414, "request line too long");
    if (line_end == std::string_view::npos) return {};

    const std::size_t blank = received.find("\r\n\r\n");
    const bool complete = blank != std::string_view::npos;
    const std::size_t head_size = complete ? blank + 4 : received.size();
    if (head_size > limits.max_head) return rejected(431, "request head too large");

    // The header lines: each ends with a newline; the blank line is not one of them (the
    // first CRLFCRLF cannot start before the request line's CR, so this is past it).
    const std::size_t headers_end = complete ? blank + 2 : received.size();
    std::size_t headers = 0;
    std::optional<std::uint64_t> length;
    for (std::size_t start = line_end + 1; start < headers_end;) {
        const std::size_t end = received.find('\n', start);
        if (end == std::string_view::npos) break;  // still arriving
        const std::string_view line = received.substr(start, end - start);
        start = end + 1;
        if (++headers > limits.max_headers) return rejected(431, "too many header lines");
        if (!complete) continue;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;  // httplib's to judge
        const std::string_view name = line.substr(0, colon);
        if (is_named(name, "transfer-encoding")) {
            return rejected(411, "a request body needs a Content-Length");
        }
        if (!is_named(name, "content-length")) continue;
        const std::optional<std::uint64_t> value = content_length(trimmed(line.substr(colon + 1)));
        if (!value || (length && *length != *value)) {
            return rejected(400, "malformed Content-Length");
        }
        length = value;
    }
    if (!complete) return {};
    if (length.value_or(0) > limits.max_body) return rejected(413, "request body too large");

    HeadCheck check;
    check.verdict = HeadCheck::Verdict::complete;
    check.head_size = head_size;
    check.body_size = static_cast<std::size_t>(length.value_or(0));
    return check;
}

}  // namespace fulcrum
