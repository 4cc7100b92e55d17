#pragma once
// A service's admission limits ([service.limits]), checked once per connection before
// any backend is touched: open connections and new connections per second per source,
// and new connections per second for the whole service. Built for every snapshot of the
// service; the state (per-source table, rate, warning episodes) passes from one to the
// next, so a reload neither forgets who is open nor hands out a fresh burst.

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "fulcrum/config/config.hpp"
#include "fulcrum/limits/rate_limiter.hpp"
#include "fulcrum/limits/source_table.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

class Admission {
public:
    // Takes over `previous`'s state (its rate's only while the rate is the same).
    Admission(const LimitsConfig& limits, const Admission* previous);

    // nullopt: admitted (then release() it when the connection ends); else why not.
    std::optional<Rejection> admit(const sockaddr* client);
    void release(const sockaddr* client);

    // Records a rejection; true when it opens an episode (none in the 10 s before), which
    // is worth one warning line.
    bool opens_episode(Rejection reason, std::int64_t now_ms);

    std::size_t tracked_sources() { return shared_->sources.size(); }

private:
    struct Shared {
        SourceTable sources;
        std::array<std::atomic<std::int64_t>, rejection_count> last_rejection_ms{};
    };

    LimitsConfig limits_;
    std::optional<Gcra> source_rate_;
    std::shared_ptr<RateLimiter> rate_;
    std::shared_ptr<Shared> shared_;
};

}  // namespace fulcrum
