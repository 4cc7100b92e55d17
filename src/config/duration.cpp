#include "fulcrum/config/duration.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace fulcrum {
namespace {

struct Unit {
    std::string_view suffix;
    std::uint64_t milliseconds;
};

// Largest first: format_duration emits its parts in this order.
constexpr std::array<Unit, 4> units{{
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

// The unit `text` starts with; the longest suffix wins, so "5ms" is not read as "5m" + "s".
const Unit* leading_unit(std::string_view text) {
    const Unit* found = nullptr;
    for (const Unit& unit : units) {
        if (text.starts_with(unit.suffix) &&
            (found == nullptr || unit.suffix.size() > found->suffix.size())) {
            found = &unit;
        }
    }
    return found;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
    std::uint64_t total = 0;
    const char* const end = text.data() + text.size();
    for (const char* next = text.data(); next != end;) {
        // Unsigned, so a sign is rejected like any other non-digit.
        std::uint64_t count = 0;
        const auto [after_number, error] = std::from_chars(next, end, count);
        if (error != std::errc{}) return std::nullopt;  // no number, or too many digits

        const Unit* unit = leading_unit({after_number, end});
        if (unit == nullptr) return std::nullopt;
        next = after_number + unit->suffix.size();

        if (count > (max - total) / unit->milliseconds) return std::nullopt;
        total += count * unit->milliseconds;
    }
    return Duration(static_cast<Duration::rep>(total));
}

std::string format_duration(Duration d) {
    // Work on the unsigned magnitude so that even the most negative value formats.
    const bool negative = d.count() < 0;
    std::uint64_t rest = static_cast<std::uint64_t>(d.count());
    if (negative) rest = 0 - rest;
    std::string text;
    for (const Unit& unit : units) {
        if (rest >= unit.milliseconds) {
            text += std::to_string(rest / unit.milliseconds);
            text += unit.suffix;
            rest %= unit.milliseconds;
        }
    }
    if (text.empty()) return "0s";
    return negative ? "-" + text : text;
}

}  // namespace fulcrum
