#include "fulcrum/limits/rate_limiter.hpp"

#include <algorithm>
#include <chrono>

namespace fulcrum {

std::int64_t steady_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

Gcra::Gcra(Rate rate)
    : interval_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(rate.per).count() /
                  static_cast<std::int64_t>(rate.count)),
      burst_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(rate.per).count()) {}

bool Gcra::admit(std::int64_t& tat, std::int64_t now_ns) const {
    const std::int64_t next = std::max(tat, now_ns) + interval_ns;
    if (next - now_ns > burst_ns) return false;
    tat = next;
    return true;
}

bool RateLimiter::admit(std::int64_t now_ns) {
    std::int64_t tat = tat_.load(std::memory_order_relaxed);
    for (;;) {
        std::int64_t next = tat;
        if (!gcra_.admit(next, now_ns)) return false;
        if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
    }
}

}  // namespace fulcrum
