#include "fulcrum/limits/admission.hpp"

namespace fulcrum {

namespace {
constexpr std::int64_t episode_gap_ms = 10'000;
}

Admission::Admission(const LimitsConfig& limits, const Admission* previous)
    : limits_(limits),
      shared_(previous != nullptr ? previous->shared_ : std::make_shared<Shared>()) {
    if (limits.connection_rate_per_source) source_rate_.emplace(*limits.connection_rate_per_source);
    if (limits.connection_rate) {
        const bool same = previous != nullptr && previous->rate_ &&
                          previous->limits_.connection_rate == limits.connection_rate;
        rate_ = same ? previous->rate_ : std::make_shared<RateLimiter>(*limits.connection_rate);
    }
}

std::optional<Rejection> Admission::admit(const sockaddr* client) {
    const bool per_source = limits_.per_source();
    if (!per_source && !rate_) return std::nullopt;
    const std::int64_t now = steady_now_ns();
    // Per source first, so that one source over its limit does not use up the service's rate.
    if (per_source &&
        !shared_->sources.admit(source_key(client), now, limits_.max_connections_per_source,
                                source_rate_ ? &*source_rate_ : nullptr)) {
        return Rejection::per_source;
    }
    if (rate_ && !rate_->admit(now)) {
        if (per_source) shared_->sources.release(source_key(client), now);
        return Rejection::rate;
    }
    return std::nullopt;
}

void Admission::release(const sockaddr* client) {
    if (limits_.per_source()) shared_->sources.release(source_key(client), steady_now_ns());
}

bool Admission::opens_episode(Rejection reason, std::int64_t now_ms) {
    const std::int64_t last =
        shared_->last_rejection_ms[static_cast<std::size_t>(reason)].exchange(now_ms);
    return last == 0 || now_ms - last > episode_gap_ms;
}

}  // namespace fulcrum
