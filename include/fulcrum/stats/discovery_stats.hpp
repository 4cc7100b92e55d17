#pragma once
// What the discovery of one service has done: for DNS, resolutions by result and the
// latest one; for etcd, the watch's state, events and revision; for both, how many
// backends it found. Written on the main loop, read by the admin endpoint.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fulcrum {

enum class ResolutionResult {
    ok,        // records found
    empty,     // NOERROR without records: the set empties at once
    nxdomain,  // the name does not exist
    servfail,
    timeout,  // no answer within timeout, its retry included
    error,    // refused, unreachable, malformed answer...
};
inline constexpr std::size_t resolution_result_count = 6;
std::string_view to_string(ResolutionResult v);

// An error keeps the last good set for `hold`; ok and empty replace it.
inline bool is_resolver_error(ResolutionResult result) {
    return result != ResolutionResult::ok && result != ResolutionResult::empty;
}

struct DiscoveryStats {
    std::array<std::atomic<std::uint64_t>, resolution_result_count> resolutions{};
    std::atomic<int> last_result{-1};      // a ResolutionResult; -1 before the first
    std::atomic<double> last_seconds{0};   // Unix time of the latest resolution
    std::atomic<std::size_t> backends{0};  // found in the set in use

    // etcd
    std::atomic<bool> watch_up{false};             // the watch is established
    std::atomic<std::uint64_t> events{0};          // puts and deletes seen under the prefix
    std::atomic<std::uint64_t> invalid_values{0};  // values skipped: not JSON, bad address...
    std::atomic<std::int64_t> revision{0};         // the store's, as of the latest read

    void record(ResolutionResult result, double unix_seconds) {
        resolutions[static_cast<std::size_t>(result)].fetch_add(1, std::memory_order_relaxed);
        last_result.store(static_cast<int>(result), std::memory_order_relaxed);
        last_seconds.store(unix_seconds, std::memory_order_relaxed);
    }
};

}  // namespace fulcrum
