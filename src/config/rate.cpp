#include "fulcrum/config/rate.hpp"

#include <charconv>

namespace fulcrum {

std::optional<Rate> parse_rate(std::string_view text) {
    Rate rate;
    const char* const end = text.data() + text.size();
    const auto [after_count, error] = std::from_chars(text.data(), end, rate.count);
    if (error != std::errc{} || rate.count == 0) return std::nullopt;
    const std::string_view unit(after_count, static_cast<std::size_t>(end - after_count));
    if (unit == "/s") {
        rate.per = std::chrono::seconds(1);
    } else if (unit == "/m") {
        rate.per = std::chrono::minutes(1);
    } else {
        return std::nullopt;
    }
    // Limits keep their state in nanoseconds per event: the count must leave at least one.
    if (rate.count > 1'000'000'000) return std::nullopt;
    return rate;
}

std::string format_rate(Rate rate) {
    return std::to_string(rate.count) + (rate.per == std::chrono::minutes(1) ? "/m" : "/s");
}

}  // namespace fulcrum
