#pragma once
// Backend selection. One strategy object per pool snapshot, built once on the main loop
// and shared by every worker: pick() is lock-free and safe to call from all of them at
// once. What it reads of the backends (eligibility, active counts) is atomic and read at
// pick time; what it weighs is each member's effective weight as of the snapshot.

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/backend.hpp"

namespace fulcrum {

// Backups take connections only when no primary can.
enum class Tier { primary, backup };

class Strategy {
public:
    virtual ~Strategy() = default;
    // A candidate of `tier` (see is_candidate), or nullptr when none is left. `client` is
    // the peer address of the connection (for strategies that hash it); it may be nullptr.
    // Picking does not count the connection: Balancer::pick does.
    const PoolMember* pick(const sockaddr* client, std::span<const PoolMember* const> tried,
                           Tier tier = Tier::primary) {
        return choose(client, {tried, tier});
    }

    struct Scope {
        std::span<const PoolMember* const> tried;
        Tier tier;
    };

protected:
    virtual const PoolMember* choose(const sockaddr* client, const Scope& scope) = 0;
};

// `seed` feeds the strategies that draw random numbers.
std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool,
                                        std::uint64_t seed);

// Whether `member` may take the connection: of the scope's tier, eligible, below its
// max_connections, and not already tried for it.
bool is_candidate(const PoolMember& member, const Strategy::Scope& scope);

// Calls visit(index, member) for every candidate of `pool`, in pool order from `first`
// round to `first - 1`.
template <typename Visit>
void for_each_candidate(const Pool& pool, const Strategy::Scope& scope, Visit&& visit,
                        std::size_t first = 0) {
    const std::size_t count = pool.members.size();
    for (std::size_t n = 0; n < count; ++n) {
        const std::size_t i = (first + n) % count;
        const PoolMember& member = pool.members[i];
        if (is_candidate(member, scope)) visit(i, member);
    }
}

// Smooth weighted round-robin (as in nginx), global across workers: the order is
// computed once per pool (weights 5,1,1 give a a b a c a a) and every pick takes the
// next ticket of one atomic counter, so whichever worker accepts, the pool as a whole
// sees the schedule. An ineligible or tried member's turn is skipped.
class RoundRobin final : public Strategy {
public:
    // Weights summing past this are scaled down to it (ratios kept within 1/max).
    static constexpr std::size_t max_schedule = 1 << 16;

    explicit RoundRobin(std::shared_ptr<const Pool> pool);
    // One full period of the schedule, as member indices.
    const std::vector<std::uint32_t>& schedule() const { return schedule_; }

private:
    const PoolMember* choose(const sockaddr* client, const Scope& scope) override;
    std::shared_ptr<const Pool> pool_;
    std::vector<std::uint32_t> schedule_;
    std::atomic<std::uint64_t> ticket_{0};
};

// The member with the fewest active sessions (all workers) relative to its weight. Ties
// go to the first tied member after the previous pick, so idle backends take turns.
class LeastConnections final : public Strategy {
public:
    explicit LeastConnections(std::shared_ptr<const Pool> pool);

private:
    const PoolMember* choose(const sockaddr* client, const Scope& scope) override;

    std::shared_ptr<const Pool> pool_;
    std::atomic<std::size_t> next_start_{0};  // where the search for the least loaded begins
};

// Power of two choices: two distinct candidates drawn at random, the less loaded relative
// to weight wins. Nearly as even as least-connections, but a burst of new connections
// across several workers does not all pile onto the one backend that looks emptiest.
class RandomTwo final : public Strategy {
public:
    RandomTwo(std::shared_ptr<const Pool> pool, std::uint64_t seed);

private:
    const PoolMember* choose(const sockaddr* client, const Scope& scope) override;

    std::uint64_t next_random();

    std::shared_ptr<const Pool> pool_;
    std::uint64_t seed_;
    std::atomic<std::uint64_t> draws_{0};  // counter-based: lock-free across workers
};

}  // namespace fulcrum
