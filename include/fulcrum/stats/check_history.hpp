#pragma once
// What a backend's active checks did over time, for alerting on a flapping backend: up and
// down transitions, failed checks by reason, when the state last changed and how long it
// has been down in all. Written on the main loop (the health checker), read by the admin
// thread; relaxed atomics, as each value stands on its own.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fulcrum {

// Why a check failed, as fulcrum_backend_check_failures_total's `reason` names it: a
// fixed set, so the label's values are known in advance.
enum class CheckFailure {
    timeout,   // no answer within the check's timeout (connect or reply)
    refused,   // the connect was refused or the backend unreachable
    reset,     // the connection was reset or closed before an answer
    status,    // an HTTP answer with a status outside expect_status
    response,  // an answer that is not what the check expects (malformed, too long, wrong bytes)
    error,     // anything else (a local error)
};
inline constexpr std::size_t check_failure_count = 6;
std::string_view to_string(CheckFailure reason);  // "timeout", ...

class CheckHistory {
public:
    using Clock = std::chrono::system_clock;

    // A backend's state last changed when it was first configured.
    CheckHistory() : last_change_ms_(unix_ms(Clock::now())) {}

    void record_failure(CheckFailure reason) {
        failures_[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
    }
    // The checks took the backend down (`up` false) or brought it back, at `now`.
    void record_transition(bool up, Clock::time_point now);

    std::uint64_t transitions(bool to_up) const {
        return (to_up ? ups_ : downs_).load(std::memory_order_relaxed);
    }
    std::uint64_t failures(CheckFailure reason) const {
        return failures_[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
    }
    // Unix time of the last transition (or of the first configuration), in seconds.
    double last_change_seconds() const {
        return static_cast<double>(last_change_ms_.load(std::memory_order_relaxed)) / 1000;
    }
    // Time spent down in all, the current stretch included, as of `now`.
    double downtime_seconds(Clock::time_point now) const;

private:
    static std::int64_t unix_ms(Clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }

    std::atomic<std::uint64_t> ups_{0};
    std::atomic<std::uint64_t> downs_{0};
    std::array<std::atomic<std::uint64_t>, check_failure_count> failures_{};
    std::atomic<std::int64_t> last_change_ms_;
    std::atomic<std::int64_t> down_since_ms_{0};     // 0: up
    std::atomic<std::int64_t> past_downtime_ms_{0};  // stretches down that ended
};

}  // namespace fulcrum
