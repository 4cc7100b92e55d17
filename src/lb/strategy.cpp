#include "fulcrum/lb/strategy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "fulcrum/lb/strategy_source_hash.hpp"
#include "fulcrum/util/splitmix64.hpp"

namespace fulcrum {

namespace {

// A member's load relative to its weight, counting the connection about to be placed:
// with the +1, weight decides even between idle backends (weights 3,1 start 3:1, not 1:1).
class RelativeLoad {
public:
    explicit RelativeLoad(const PoolMember& member)
        : sessions_(member.backend->active.load(std::memory_order_relaxed) + 1),
          weight_(member.effective_weight) {}

    // sessions / weight < other.sessions / other.weight, cross-multiplied (weights > 0).
    bool operator<(const RelativeLoad& other) const {
        return sessions_ * other.weight_ < other.sessions_ * weight_;
    }

private:
    double sessions_;
    double weight_;
};

// The effective weights of `pool` in integer hundredths (slow start ramps in steps of a
// twentieth from a hundredth), divided by their common divisor and scaled down to sum at
// most `limit` (each at least 1).
std::vector<std::uint64_t> reduced_weights(const Pool& pool, std::size_t limit) {
    std::vector<std::uint64_t> weights;
    std::uint64_t divisor = 0;
    for (const PoolMember& member : pool.members) {
        weights.push_back(std::max<std::uint64_t>(1, std::llround(member.effective_weight * 100)));
        divisor = std::gcd(divisor, weights.back());
    }
    std::uint64_t total = 0;
    for (std::uint64_t& w : weights) total += (w /= divisor);
    if (total > limit) {
        for (std::uint64_t& w : weights) w = std::max<std::uint64_t>(1, w * limit / total);
    }
    return weights;
}

}  // namespace

std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool,
                                        std::uint64_t seed) {
    switch (kind) {
        case StrategyKind::round_robin:
            return std::make_unique<RoundRobin>(std::move(pool));
        case StrategyKind::least_connections:
            return std::make_unique<LeastConnections>(std::move(pool));
        case StrategyKind::random_two:
            return std::make_unique<RandomTwo>(std::move(pool), seed);
        case StrategyKind::source_hash:
            return std::make_unique<SourceHash>(std::move(pool));
    }
    throw std::logic_error("make_strategy: unknown strategy kind");
}

bool is_candidate(const PoolMember& member, const Strategy::Scope& scope) {
    return member.config.backup == (scope.tier == Tier::backup) && member.backend->eligible() &&
           member.backend->has_room(member.config.max_connections) &&
           std::ranges::find(scope.tried, &member) == scope.tried.end();
}

RoundRobin::RoundRobin(std::shared_ptr<const Pool> pool) : pool_(std::move(pool)) {
    // nginx's smooth weighted round-robin, run once over a whole period.
    const std::vector<std::uint64_t> weights = reduced_weights(*pool_, max_schedule);
    const auto total = static_cast<std::int64_t>(
        std::accumulate(weights.begin(), weights.end(), std::uint64_t{0}));
    std::vector<std::int64_t> current(weights.size(), 0);
    schedule_.reserve(static_cast<std::size_t>(total));
    for (std::int64_t turn = 0; turn < total; ++turn) {
        std::size_t best = 0;
        for (std::size_t i = 0; i < weights.size(); ++i) {
            current[i] += static_cast<std::int64_t>(weights[i]);
            if (current[i] > current[best]) best = i;
        }
        current[best] -= total;
        schedule_.push_back(static_cast<std::uint32_t>(best));
    }
}

const PoolMember* RoundRobin::choose(const sockaddr*, const Scope& scope) {
    const std::size_t period = schedule_.size();
    if (period == 0) return nullptr;
    // A turn that falls on a member out of rotation is passed over with a new ticket, so
    // the others keep their order (a b c with b down goes a c a c, not a c c a).
    for (std::size_t n = 0; n < period; ++n) {
        const std::uint64_t ticket = ticket_.fetch_add(1, std::memory_order_relaxed);
        const PoolMember& member = pool_->members[schedule_[ticket % period]];
        if (is_candidate(member, scope)) return &member;
    }
    return nullptr;
}

LeastConnections::LeastConnections(std::shared_ptr<const Pool> pool) : pool_(std::move(pool)) {}

const PoolMember* LeastConnections::choose(const sockaddr*, const Scope& scope) {
    // Each load is read once: other workers move the counts while we compare.
    std::optional<std::size_t> best;
    std::optional<RelativeLoad> best_load;
    for_each_candidate(
        *pool_, scope,
        [&](std::size_t i, const PoolMember& member) {
            RelativeLoad load(member);
            if (!best_load || load < *best_load) {
                best = i;
                best_load = load;
            }
        },
        next_start_.load(std::memory_order_relaxed));
    if (!best) return nullptr;
    next_start_.store((*best + 1) % pool_->members.size(), std::memory_order_relaxed);
    return &pool_->members[*best];
}

RandomTwo::RandomTwo(std::shared_ptr<const Pool> pool, std::uint64_t seed)
    : pool_(std::move(pool)), seed_(seed) {}

std::uint64_t RandomTwo::next_random() {
    return splitmix64(seed_ + draws_.fetch_add(1, std::memory_order_relaxed));
}

const PoolMember* RandomTwo::choose(const sockaddr*, const Scope& scope) {
    // Counted first, then the two draws located: no list of candidates to allocate. A
    // health change between the passes can leave a draw unmatched: it is then skipped.
    std::size_t count = 0;
    for_each_candidate(*pool_, scope, [&](std::size_t, const PoolMember&) { ++count; });
    if (count == 0) return nullptr;
    // The second is drawn from the others, so the two are distinct.
    const std::size_t first = next_random() % count;
    std::size_t second = count > 1 ? next_random() % (count - 1) : first;
    if (count > 1 && second >= first) ++second;
    const PoolMember* a = nullptr;
    const PoolMember* b = nullptr;
    std::size_t n = 0;
    for_each_candidate(*pool_, scope, [&](std::size_t, const PoolMember& member) {
        if (n == first) a = &member;
        if (n == second) b = &member;
        ++n;
    });
    if (a == nullptr || b == nullptr) return a != nullptr ? a : b;
    return RelativeLoad(*b) < RelativeLoad(*a) ? b : a;
}

}  // namespace fulcrum
