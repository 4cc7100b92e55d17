#include "fulcrum/health/health.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>

#include "fulcrum/health/tcp_probe.hpp"

namespace fulcrum {

HealthTracker::Change HealthTracker::record(bool success) {
    if (success == up_) {
        streak_ = 0;
        return Change::none;
    }
    if (++streak_ < (up_ ? fall_ : rise_)) return Change::none;
    up_ = !up_;
    streak_ = 0;
    return up_ ? Change::went_up : Change::went_down;
}

HealthTracker::Change HealthTracker::force_down() {
    streak_ = 0;
    if (!up_) return Change::none;
    up_ = false;
    return Change::went_down;
}

namespace {

// Timer calls fail only on a programming error: say so rather than silently not probing.
void check_uv(int rc, const char* what) {
    if (rc < 0) spdlog::error("health: {}: {}", what, uv_strerror(rc));
}

}  // namespace

// All backends of one service that are checked, for the all_unhealthy decision.
struct HealthChecker::ServiceGroup {
    std::shared_ptr<const ServiceConfig> service;
    std::vector<Target*> targets;
};

struct HealthChecker::Target {
    Target(HealthChecker* checker, std::shared_ptr<ServiceGroup> service_group,
           const PoolMember& member, HealthTracker state)
        : owner(checker),
          group(std::move(service_group)),
          backend(member.backend),
          config(member.config),
          tracker(state) {}

    HealthChecker* owner;
    std::shared_ptr<ServiceGroup> group;
    std::shared_ptr<Backend> backend;
    BackendConfig config;  // as of the pool it was configured from
    HealthTracker tracker;
    uv_timer_t timer{};
    bool probing = false;
    std::atomic<bool> retired{false};  // read by the pool thread: a queued probe is skipped
    bool timer_closed = false;
    // Written by the pool thread (HTTP) or the loop (other types), read in after_probe.
    ProbeResult result;
    std::chrono::microseconds probe_duration{0};
};

HealthChecker::HealthChecker(uv_loop_t* loop) : loop_(loop), pool_(loop) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::configure(const std::vector<ServiceState>& services) {
    std::vector<std::unique_ptr<Target>> previous = std::move(targets_);
    targets_.clear();
    for (const ServiceState& state : services) {
        const HealthConfig& health = state.config->health;
        if (!health.enabled) {
            // Unchecked backends are routable (passive detection still applies).
            for (const PoolMember& member : state.pool->members) {
                member.backend->check_up = true;
                member.backend->routable = true;
            }
            continue;
        }
        auto group = std::make_shared<ServiceGroup>();
        group->service = state.config;
        for (const PoolMember& member : state.pool->members) {
            HealthTracker tracker(health.rise, health.fall);
            for (const auto& old : previous) {
                if (old->backend == member.backend) tracker = old->tracker.with_thresholds(health);
            }
            targets_.push_back(std::make_unique<Target>(this, group, member, tracker));
            Target& target = *targets_.back();
            check_uv(uv_timer_init(loop_, &target.timer), "uv_timer_init");
            target.timer.data = &target;
            group->targets.push_back(&target);
        }
        update_routing(*group);
        const auto interval = static_cast<std::uint64_t>(health.interval.count());
        const std::size_t count = group->targets.size();
        for (std::size_t i = 0; i < count; ++i) {
            // Spread over the interval so probes do not all fire at once.
            check_uv(
                uv_timer_start(&group->targets[i]->timer, on_timer, interval * i / count, interval),
                "uv_timer_start");
        }
    }
    for (auto& target : previous) {
        // A probe still queued is skipped; one already running ends within its timeout.
        target->retired = true;
        uv_close(reinterpret_cast<uv_handle_t*>(&target->timer), on_timer_closed);
        retired_.push_back(std::move(target));
    }
    // A thread per backend with an HTTP check: probes never wait for each other's timeouts.
    const auto http_targets =
        static_cast<std::size_t>(std::count_if(targets_.begin(), targets_.end(), [](const auto& t) {
            return t->group->service->health.type == CheckType::http;
        }));
    pool_.resize(
        http_targets == 0 ? 0 : std::clamp(http_targets, min_probe_threads, max_probe_threads));
}

void HealthChecker::stop() {
    pool_.stop();
    configure({});
}

void HealthChecker::on_timer_closed(uv_handle_t* handle) {
    auto* target = static_cast<Target*>(handle->data);
    target->timer_closed = true;
    target->owner->release_if_done(target);
}

void HealthChecker::release_if_done(Target* target) {
    if (!target->timer_closed || target->probing) return;
    std::erase_if(retired_, [target](const auto& t) { return t.get() == target; });
}

void HealthChecker::on_timer(uv_timer_t* timer) {
    auto* target = static_cast<Target*>(timer->data);
    if (target->probing) return;  // the previous probe is still within its timeout
    target->probing = true;
    HealthChecker* owner = target->owner;
    const HealthConfig& health = target->group->service->health;
    if (health.type == CheckType::http) {
        owner->pool_.submit([target] { run_probe(*target); },
                            [target](bool ran) { target->owner->after_probe(*target, ran); });
        return;
    }
    // The other types never block: they run on this loop.
    const auto start = std::chrono::steady_clock::now();
    start_tcp_probe(
        owner->loop_, health, target->config, [target, start](const ProbeResult& result) {
            target->result = result;
            target->probe_duration = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - start);
            target->owner->after_probe(*target, true);
        });
}

void HealthChecker::run_probe(Target& target) {
    if (target.retired) return;
    const auto start = std::chrono::steady_clock::now();
    try {
        target.result = probe_backend(target.group->service->health, target.config);
    } catch (const std::exception& e) {
        target.result = {false, e.what(), CheckFailure::error};
    }
    target.probe_duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
}

void HealthChecker::after_probe(Target& target, bool ran) {
    target.probing = false;
    if (target.retired) {
        release_if_done(&target);
        return;
    }
    if (ran) apply(target, target.result);
}

void HealthChecker::apply(Target& target, const ProbeResult& result) {
    Backend& backend = *target.backend;
    backend.check_duration.observe(target.probe_duration);
    backend.record_check(
        {result.success, result.detail, std::chrono::system_clock::now(), target.probe_duration});
    spdlog::debug("service {}: backend {}: probe {}: {}", target.group->service->name, backend.name,
                  result.success ? "passed" : "failed", result.detail);
    if (!result.success) backend.check_history.record_failure(result.failure);
    if (backend.passive_tripped.exchange(false, std::memory_order_relaxed)) {
        // With active checks on, a passive trip lasts until the probes see it healthy.
        transition(target, target.tracker.force_down(), "connect failures while proxying");
    }
    transition(target, target.tracker.record(result.success), result.detail);
}

void HealthChecker::transition(Target& target, HealthTracker::Change change,
                               const std::string& why) {
    if (change == HealthTracker::Change::none) return;
    const bool up = change == HealthTracker::Change::went_up;
    spdlog::warn("service {}: backend {} is {} (was {}): {}", target.group->service->name,
                 target.backend->name, up ? "up" : "down", up ? "down" : "up", why);
    if (up) target.backend->out_until_ms.store(0, std::memory_order_relaxed);
    target.backend->check_history.record_transition(up, std::chrono::system_clock::now());
    update_routing(*target.group);
}

void HealthChecker::update_routing(ServiceGroup& group) {
    const bool all_down = std::none_of(group.targets.begin(), group.targets.end(),
                                       [](const Target* t) { return t->tracker.up(); });
    const bool fail_open = group.service->health.all_unhealthy == AllUnhealthy::fail_open;
    if (all_down) {
        spdlog::error("service {}: every backend is down; {}", group.service->name,
                      fail_open ? "failing open: spreading over all of them"
                                : "new connections get on_failure");
    }
    for (Target* t : group.targets) {
        // Checks say what they saw; routing may still use a backend they find down.
        t->backend->check_up.store(t->tracker.up(), std::memory_order_relaxed);
        const bool routable = t->tracker.up() || (all_down && fail_open);
        if (routable && !t->backend->routable.exchange(routable, std::memory_order_relaxed)) {
            t->backend->mark_up(steady_now_ms());  // back in rotation: slow start from here
        } else if (!routable) {
            t->backend->routable.store(false, std::memory_order_relaxed);
        }
    }
}

}  // namespace fulcrum
