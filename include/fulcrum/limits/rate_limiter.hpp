#pragma once
// Rate limiting by the generic cell rate algorithm (GCRA, as in ATM and many API
// gateways): one timestamp per limited thing, the "theoretical arrival time" (TAT) of
// the next event at the limit's pace. An event is let through when it would not bring
// the TAT more than one period (the burst) ahead of now. One number of state, no timer,
// no refill: exact, and lock-free where it is shared.

#include <atomic>
#include <cstdint>

#include "fulcrum/config/rate.hpp"

namespace fulcrum {

// Nanoseconds on the monotonic clock.
std::int64_t steady_now_ns();

// The pace and burst of `rate`, in nanoseconds.
struct Gcra {
    Gcra() = default;
    explicit Gcra(Rate rate);
    std::int64_t interval_ns = 0;  // between events at the limit's pace
    std::int64_t burst_ns = 0;     // how far ahead of now the TAT may run: one period

    // Lets an event at `now_ns` through, moving `tat`; false (tat untouched) over the limit.
    bool admit(std::int64_t& tat, std::int64_t now_ns) const;
};

// One rate shared by every worker: a compare-and-swap on the TAT.
class RateLimiter {
public:
    explicit RateLimiter(Rate rate) : gcra_(rate) {}
    bool admit(std::int64_t now_ns);

private:
    const Gcra gcra_;
    std::atomic<std::int64_t> tat_{0};
};

}  // namespace fulcrum
