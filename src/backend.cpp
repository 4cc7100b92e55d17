#include "fulcrum/backend.hpp"

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

Pool::Pool(const ServiceConfig& service, const Pool* previous) {
    backends.reserve(service.backends.size());
    for (const auto& cfg : service.backends) {
        std::shared_ptr<Backend> backend;
        if (previous != nullptr) {
            for (const auto& old : previous->backends) {
                if (old->config == cfg) backend = old;
            }
        }
        backends.push_back(backend ? backend : std::make_shared<Backend>(cfg));
    }
}

}  // namespace fulcrum
