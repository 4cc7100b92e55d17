#include "fulcrum/lb/backend.hpp"

#include <chrono>

namespace fulcrum {

std::int64_t steady_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool Backend::take_slot(int max_connections) {
    if (max_connections == 0) {
        active.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    int current = active.load(std::memory_order_relaxed);
    do {
        if (current >= max_connections) return false;
    } while (!active.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
    return true;
}

bool Backend::record_connect_failure(std::int64_t now_ms, const PassiveConfig& passive) {
    std::int64_t start = window_start_ms_.load(std::memory_order_relaxed);
    if (now_ms - start > passive.window.count() &&
        window_start_ms_.compare_exchange_strong(start, now_ms, std::memory_order_relaxed)) {
        window_failures_.store(0, std::memory_order_relaxed);
    }
    if (window_failures_.fetch_add(1, std::memory_order_relaxed) + 1 < passive.max_failures) {
        return false;
    }
    window_failures_.store(0, std::memory_order_relaxed);
    window_start_ms_.store(now_ms, std::memory_order_relaxed);
    out_until_ms.store(now_ms + passive.cooldown.count(), std::memory_order_relaxed);
    passive_tripped.store(true, std::memory_order_relaxed);
    return true;
}

void Backend::record_check(CheckRecord check) {
    std::lock_guard lock(check_mutex_);
    if (!check.passed) last_failure_ = check;
    last_check_ = std::move(check);
}

std::optional<CheckRecord> Backend::last_check() const {
    std::lock_guard lock(check_mutex_);
    return last_check_;
}

std::optional<CheckRecord> Backend::last_failure() const {
    std::lock_guard lock(check_mutex_);
    return last_failure_;
}

double slow_start_factor(Duration slow_start, std::int64_t up_since_ms, std::int64_t now_ms) {
    if (up_since_ms == 0 || slow_start <= Duration::zero()) return 1;
    constexpr int steps = 20;
    const std::int64_t step = (now_ms - up_since_ms) * steps / slow_start.count();
    if (step >= steps) return 1;
    return step <= 0 ? 0.01 : static_cast<double>(step) / steps;
}

Pool::Pool(const ServiceConfig& service, const Pool* previous, std::size_t workers,
           std::int64_t now_ms) {
    members.reserve(service.backends.size());
    for (const BackendConfig& config : service.backends) {
        const PoolMember* old = previous != nullptr ? previous->find(config.name) : nullptr;
        std::shared_ptr<Backend> backend =
            old != nullptr ? old->backend : std::make_shared<Backend>(config.name, workers);
        if (old == nullptr && previous != nullptr) backend->mark_up(now_ms);
        if (backend->discovery_drained.exchange(config.drain) != config.drain) {
            // drain_timeout counts from the drain, slow start from its end.
            if (config.drain) {
                backend->mark_leaving(now_ms);
            } else if (!backend->drained.load(std::memory_order_relaxed)) {
                backend->leaving_since_ms.store(0, std::memory_order_relaxed);
                backend->mark_up(now_ms);
            }
        }
        members.push_back({std::move(backend), config, 1});
        has_backups = has_backups || config.backup;
    }
    *this = reweighted(service.slow_start, now_ms);
}

Pool Pool::reweighted(Duration slow_start, std::int64_t now_ms) const {
    Pool copy = *this;
    for (PoolMember& member : copy.members) {
        member.effective_weight =
            member.base_weight() *
            slow_start_factor(slow_start,
                              member.backend->up_since_ms.load(std::memory_order_relaxed), now_ms);
    }
    return copy;
}

const PoolMember* Pool::find(std::string_view name) const {
    for (const PoolMember& member : members) {
        if (member.config.name == name) return &member;
    }
    return nullptr;
}

}  // namespace fulcrum
