#include "fulcrum/strategy.hpp"

#include <algorithm>

namespace fulcrum {

std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool) {
    switch (kind) {
        case StrategyKind::round_robin:
            return std::make_unique<RoundRobin>(std::move(pool));
    }
    return nullptr;
}

RoundRobin::RoundRobin(std::shared_ptr<const Pool> pool)
    : pool_(std::move(pool)), current_(pool_->backends.size(), 0) {}

Backend* RoundRobin::pick(const sockaddr*, std::span<Backend* const> tried) {
    long total = 0;
    std::size_t best = current_.size();
    for (std::size_t i = 0; i < current_.size(); ++i) {
        Backend* b = pool_->backends[i].get();
        if (!b->eligible() || std::ranges::find(tried, b) != tried.end()) continue;
        current_[i] += b->config.weight;
        total += b->config.weight;
        if (best == current_.size() || current_[i] > current_[best]) best = i;
    }
    if (best == current_.size()) return nullptr;
    current_[best] -= total;
    return pool_->backends[best].get();
}

}  // namespace fulcrum
