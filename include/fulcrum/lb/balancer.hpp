#pragma once
// The balancing state of one service's pool: built once by the main loop for every pool
// change, shared by every worker, lock-free. It answers a pick with a backend (counted in
// its active sessions until released), "wait" (a backend may free up: the caller may
// queue), or "none" with the reason, and it owns the active counts: a session that got a
// backend releases it exactly once.

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/backend.hpp"
#include "fulcrum/lb/strategy.hpp"

namespace fulcrum {

struct Pick {
    enum class Kind {
        backend,  // `member` is taken: release it when the session is done with it
        wait,     // every candidate is at a limit; one may free up
        none,     // nothing can take the connection: `reason` says why
    };
    Kind kind = Kind::none;
    const PoolMember* member = nullptr;
    std::string_view reason;  // for none: "every backend is down", ...
};

class Balancer {
public:
    // `seed` feeds the strategies that draw random numbers.
    Balancer(std::shared_ptr<const Pool> pool, StrategyKind kind, std::uint64_t seed);
    // Seeded from std::random_device, so that two fulcrums do not draw in lockstep.
    Balancer(std::shared_ptr<const Pool> pool, StrategyKind kind);

    // Thread-safe. `tried`: the members this connection already failed on. Backups are
    // picked only when no primary is routable; a member at its max_connections is not
    // picked, and when only such members are left the answer is "wait".
    Pick pick(const sockaddr* client, std::span<const PoolMember* const> tried);
    // Frees a slot pick() took (a session with a queue gives it to WaitQueue::release,
    // which may hand it to a waiting connection instead).
    static void release(const PoolMember& member);

private:
    // Primaries, unless none of them that this connection has not failed on is routable.
    Tier tier_for(std::span<const PoolMember* const> tried) const;
    std::string_view reason_for_none(std::span<const PoolMember* const> tried) const;

    std::shared_ptr<const Pool> pool_;
    std::unique_ptr<Strategy> strategy_;
};

}  // namespace fulcrum
