#include "fulcrum/stats/check_history.hpp"

#include <algorithm>

namespace fulcrum {

std::string_view to_string(CheckFailure reason) {
    switch (reason) {
        case CheckFailure::timeout:
            return "timeout";
        case CheckFailure::refused:
            return "refused";
        case CheckFailure::reset:
            return "reset";
        case CheckFailure::status:
            return "status";
        case CheckFailure::response:
            return "response";
        case CheckFailure::error:
            break;
    }
    return "error";
}

void CheckHistory::record_transition(bool up, Clock::time_point now) {
    const std::int64_t now_ms = unix_ms(now);
    last_change_ms_.store(now_ms, std::memory_order_relaxed);
    if (up) {
        ups_.fetch_add(1, std::memory_order_relaxed);
        const std::int64_t since = down_since_ms_.exchange(0, std::memory_order_relaxed);
        if (since != 0) past_downtime_ms_.fetch_add(now_ms - since, std::memory_order_relaxed);
    } else {
        downs_.fetch_add(1, std::memory_order_relaxed);
        down_since_ms_.store(now_ms, std::memory_order_relaxed);
    }
}

double CheckHistory::downtime_seconds(Clock::time_point now) const {
    std::int64_t total = past_downtime_ms_.load(std::memory_order_relaxed);
    const std::int64_t since = down_since_ms_.load(std::memory_order_relaxed);
    if (since != 0) total += std::max<std::int64_t>(0, unix_ms(now) - since);
    return static_cast<double>(total) / 1000;
}

}  // namespace fulcrum
