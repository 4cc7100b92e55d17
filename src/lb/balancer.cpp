#include "fulcrum/lb/balancer.hpp"

#include <algorithm>
#include <random>

namespace fulcrum {

namespace {

std::uint64_t seed_from_random_device() {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

}  // namespace

Balancer::Balancer(std::shared_ptr<const Pool> pool, StrategyKind kind, std::uint64_t seed)
    : pool_(std::move(pool)), strategy_(make_strategy(kind, pool_, seed)) {}

Balancer::Balancer(std::shared_ptr<const Pool> pool, StrategyKind kind)
    : Balancer(std::move(pool), kind, seed_from_random_device()) {}

Tier Balancer::tier_for(std::span<const PoolMember* const> tried) const {
    if (!pool_->has_backups) return Tier::primary;
    // A primary that is routable, full or not, keeps the backups out; one this connection
    // already failed on does not.
    const bool primary_available = std::ranges::any_of(pool_->members, [&](const PoolMember& m) {
        return !m.config.backup && m.backend->eligible() &&
               std::ranges::find(tried, &m) == tried.end();
    });
    return primary_available ? Tier::primary : Tier::backup;
}

Pick Balancer::pick(const sockaddr* client, std::span<const PoolMember* const> tried) {
    const Tier tier = tier_for(tried);
    // A member seen with room can fill up before the slot is taken: then pick again, and
    // the strategy sees it full. Every turn that fails sees one more member full.
    for (std::size_t turn = 0; turn <= pool_->members.size(); ++turn) {
        const PoolMember* member = strategy_->pick(client, tried, tier);
        if (member == nullptr) break;
        if (member->backend->take_slot(member->config.max_connections)) {
            return {Pick::Kind::backend, member, {}};
        }
    }
    const bool one_may_free_up = std::ranges::any_of(pool_->members, [&](const PoolMember& m) {
        return m.config.backup == (tier == Tier::backup) && m.backend->eligible() &&
               !m.backend->has_room(m.config.max_connections) &&
               std::ranges::find(tried, &m) == tried.end();
    });
    if (one_may_free_up) return {Pick::Kind::wait, nullptr, "every backend is full"};
    return {Pick::Kind::none, nullptr, reason_for_none(tried)};
}

void Balancer::release(const PoolMember& member) {
    member.backend->active.fetch_sub(1, std::memory_order_relaxed);
}

std::string_view Balancer::reason_for_none(std::span<const PoolMember* const> tried) const {
    // Off the hot path: only a connection that gets no backend pays for this.
    const auto& members = pool_->members;
    if (members.empty()) return "no backends";
    auto all = [&](auto&& predicate) {
        return std::all_of(members.begin(), members.end(), predicate);
    };
    if (all([](const PoolMember& m) { return m.backend->is_drained(); })) {
        return "every backend is drained";
    }
    if (all([](const PoolMember& m) { return !m.backend->passes_checks(); })) {
        return "every backend is down";
    }
    if (all([&](const PoolMember& m) {
            return !m.backend->eligible() || std::ranges::find(tried, &m) != tried.end();
        })) {
        return tried.empty() ? "no backend is eligible (drained or down)"
                             : "every eligible backend was tried";
    }
    return "no backend is eligible";
}

}  // namespace fulcrum
