#include "fulcrum/lb/backend.hpp"

#include <chrono>

namespace fulcrum {

std::int64_t steady_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
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
    last_check_ = std::move(check);
}

std::optional<CheckRecord> Backend::last_check() const {
    std::lock_guard lock(check_mutex_);
    return last_check_;
}

Pool::Pool(const ServiceConfig& service, const Pool* previous, std::size_t workers) {
    members.reserve(service.backends.size());
    for (const BackendConfig& config : service.backends) {
        const PoolMember* old = previous != nullptr ? previous->find(config.name) : nullptr;
        members.push_back(
            {old != nullptr ? old->backend : std::make_shared<Backend>(config.name, workers),
             config, config.weight});
    }
}

const PoolMember* Pool::find(std::string_view name) const {
    for (const PoolMember& member : members) {
        if (member.config.name == name) return &member;
    }
    return nullptr;
}

}  // namespace fulcrum
