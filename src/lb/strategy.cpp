#include "fulcrum/lb/strategy.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "fulcrum/lb/strategy_source_hash.hpp"

namespace fulcrum {

namespace {

// A backend's load relative to its weight, counting the connection about to be placed:
// with the +1, weight decides even between idle backends (weights 3,1 start 3:1, not 1:1).
class RelativeLoad {
public:
    explicit RelativeLoad(const Backend& backend)
        : sessions_(backend.active.load(std::memory_order_relaxed) + 1),
          weight_(backend.config.weight) {}

    // sessions / weight < other.sessions / other.weight, cross-multiplied to stay exact.
    bool operator<(const RelativeLoad& other) const {
        return sessions_ * other.weight_ < other.sessions_ * weight_;
    }

private:
    std::int64_t sessions_;
    std::int64_t weight_;
};

std::uint64_t seed_from_random_device() {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
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

std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool) {
    return make_strategy(kind, std::move(pool), seed_from_random_device());
}

bool is_candidate(const Backend& backend, std::span<Backend* const> tried) {
    return backend.eligible() && std::ranges::find(tried, &backend) == tried.end();
}

RoundRobin::RoundRobin(std::shared_ptr<const Pool> pool)
    : pool_(std::move(pool)), current_(pool_->backends.size(), 0) {}

Backend* RoundRobin::pick(const sockaddr*, std::span<Backend* const> tried) {
    long total = 0;
    std::optional<std::size_t> best;
    for_each_candidate(*pool_, tried, [&](std::size_t i, const Backend& backend) {
        current_[i] += backend.config.weight;
        total += backend.config.weight;
        if (!best || current_[i] > current_[*best]) best = i;
    });
    if (!best) return nullptr;
    current_[*best] -= total;
    return pool_->backends[*best].get();
}

LeastConnections::LeastConnections(std::shared_ptr<const Pool> pool) : pool_(std::move(pool)) {}

Backend* LeastConnections::pick(const sockaddr*, std::span<Backend* const> tried) {
    // Each load is read once: other workers move the counts while we compare.
    std::optional<std::size_t> best;
    std::optional<RelativeLoad> best_load;
    for_each_candidate(
        *pool_, tried,
        [&](std::size_t i, const Backend& backend) {
            RelativeLoad load(backend);
            if (!best_load || load < *best_load) {
                best = i;
                best_load = load;
            }
        },
        next_start_);
    if (!best) return nullptr;
    next_start_ = (*best + 1) % pool_->backends.size();
    return pool_->backends[*best].get();
}

RandomTwo::RandomTwo(std::shared_ptr<const Pool> pool, std::uint64_t seed)
    : pool_(std::move(pool)), random_(seed) {
    candidates_.reserve(pool_->backends.size());
}

Backend* RandomTwo::pick(const sockaddr*, std::span<Backend* const> tried) {
    // Collected in one pass, so a health change meanwhile cannot leave a draw unmatched.
    candidates_.clear();
    for_each_candidate(*pool_, tried,
                       [&](std::size_t, Backend& backend) { candidates_.push_back(&backend); });
    if (candidates_.size() < 2) return candidates_.empty() ? nullptr : candidates_.front();

    // The second is drawn from the others, so the two are distinct.
    using Draw = std::uniform_int_distribution<std::size_t>;
    const std::size_t first = Draw(0, candidates_.size() - 1)(random_);
    std::size_t second = Draw(0, candidates_.size() - 2)(random_);
    if (second >= first) ++second;
    Backend* a = candidates_[first];
    Backend* b = candidates_[second];
    return RelativeLoad(*b) < RelativeLoad(*a) ? b : a;
}

}  // namespace fulcrum
