#pragma once
// Rates as written in the configuration: "<count>/<unit>", unit s or m ("2000/s",
// "60/m"). A rate limit lets `count` events through per period, in bursts of at most one
// period's worth.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fulcrum/config/duration.hpp"

namespace fulcrum {

struct Rate {
    std::uint64_t count = 0;
    Duration per = std::chrono::seconds(1);

    bool operator==(const Rate&) const = default;
};

// nullopt when `text` is not <count>/<unit>, the count is 0 or it overflows.
std::optional<Rate> parse_rate(std::string_view text);
// What parse_rate reads back: "2000/s".
std::string format_rate(Rate rate);

}  // namespace fulcrum
