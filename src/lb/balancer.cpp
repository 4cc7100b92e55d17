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

Pick Balancer::pick(const sockaddr* client, std::span<const PoolMember* const> tried) {
    const PoolMember* member = strategy_->pick(client, tried);
    if (member == nullptr) return {Pick::Kind::none, nullptr, reason_for_none(tried)};
    member->backend->active.fetch_add(1, std::memory_order_relaxed);
    return {Pick::Kind::backend, member, {}};
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
    if (all([](const PoolMember& m) { return m.backend->drained.load(); })) {
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
