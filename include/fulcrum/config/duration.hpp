#pragma once
// Durations as written in the configuration: a sequence of <number><unit> parts,
// units ms, s, m, h (for example "250ms", "2s", "1m30s"). A bare number is rejected:
// "30" could mean seconds or milliseconds, and guessing wrong is worse than an error.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace fulcrum {

using Duration = std::chrono::milliseconds;

// Returns nullopt when `text` is empty, has no unit, an unknown unit or overflows.
std::optional<Duration> parse_duration(std::string_view text);

// The shortest text that parse_duration reads back as `d` ("1m30s", "250ms", "0s").
std::string format_duration(Duration d);

}  // namespace fulcrum
