#include "fulcrum/health/health.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>

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

std::string describe(httplib::Error error) {
    switch (error) {
        case httplib::Error::Connection:
            return "connect failed (refused or unreachable)";
        case httplib::Error::ConnectionTimeout:
            return "connect timeout";
        case httplib::Error::Read:
            return "no response (timeout or reset)";
        case httplib::Error::Write:
            return "request not sent (reset)";
        default:
            return httplib::to_string(error);
    }
}

// An HTTP client that writes a PROXY header as soon as it has connected.
class ProxyHeaderClient : public httplib::ClientImpl {
public:
    ProxyHeaderClient(const std::string& host, int port, std::string header)
        : httplib::ClientImpl(host, port), header_(std::move(header)) {}

protected:
    bool create_and_connect_socket(Socket& socket, httplib::Error& error) override {
        if (!httplib::ClientImpl::create_and_connect_socket(socket, error)) return false;
        // The socket is blocking here, with the write timeout set as SO_SNDTIMEO.
        std::string_view rest = header_;
        while (!rest.empty()) {
            const ssize_t n = ::send(socket.sock, rest.data(), rest.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                error = httplib::Error::Write;
                return false;
            }
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

private:
    std::string header_;
};

}  // namespace

ProbeResult probe_backend(const HealthConfig& health, const BackendConfig& backend) {
    const Address& address = backend.address;
    const int port = health.port != 0 ? health.port : address.port();
    std::string header;
    if (health.send_proxy && backend.send_proxy) header = encode_proxy_local(*backend.send_proxy);
    ProxyHeaderClient client(address.ip(), port, std::move(header));
    const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(health.timeout);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    client.set_keep_alive(false);
    const std::string host = !health.host.empty() ? health.host : address.numeric();
    httplib::Result response = client.Get(health.path, {{"Host", host}});
    if (!response) return {false, describe(response.error())};
    const int status = response->status;
    const bool expected = status >= health.expect_status_min && status <= health.expect_status_max;
    return {expected, "status " + std::to_string(status)};
}

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
    uv_work_t work{};
    bool probing = false;
    bool retired = false;
    bool timer_closed = false;
    ProbeResult result;                           // written by the pool thread, read in after_probe
    std::chrono::microseconds probe_duration{0};  // likewise
};

HealthChecker::HealthChecker(uv_loop_t* loop) : loop_(loop) {}

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
            uv_timer_init(loop_, &target.timer);
            target.timer.data = &target;
            target.work.data = &target;
            group->targets.push_back(&target);
        }
        update_routing(*group);
        const auto interval = static_cast<std::uint64_t>(health.interval.count());
        const std::size_t count = group->targets.size();
        for (std::size_t i = 0; i < count; ++i) {
            // Spread over the interval so probes do not all fire at once.
            uv_timer_start(&group->targets[i]->timer, on_timer, interval * i / count, interval);
        }
    }
    for (auto& target : previous) {
        target->retired = true;
        uv_close(reinterpret_cast<uv_handle_t*>(&target->timer), on_timer_closed);
        // A probe still queued is dropped; one already running finishes within its timeout.
        if (target->probing) uv_cancel(reinterpret_cast<uv_req_t*>(&target->work));
        retired_.push_back(std::move(target));
    }
}

void HealthChecker::stop() {
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
    if (int rc = uv_queue_work(target->owner->loop_, &target->work, run_probe, after_probe);
        rc < 0) {
        target->probing = false;
        spdlog::error("health: cannot queue a probe: {}", uv_strerror(rc));
    }
}

void HealthChecker::run_probe(uv_work_t* work) {
    auto* target = static_cast<Target*>(work->data);
    const auto start = std::chrono::steady_clock::now();
    try {
        target->result = probe_backend(target->group->service->health, target->config);
    } catch (const std::exception& e) {
        target->result = {false, e.what()};
    }
    target->probe_duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
}

void HealthChecker::after_probe(uv_work_t* work, int status) {
    auto* target = static_cast<Target*>(work->data);
    target->probing = false;
    if (target->retired) {
        target->owner->release_if_done(target);
        return;
    }
    if (status == 0) target->owner->apply(*target, target->result);
}

void HealthChecker::apply(Target& target, const ProbeResult& result) {
    Backend& backend = *target.backend;
    backend.check_duration.observe(target.probe_duration);
    backend.record_check(
        {result.success, result.detail, std::chrono::system_clock::now(), target.probe_duration});
    spdlog::debug("service {}: backend {}: probe {}: {}", target.group->service->name, backend.name,
                  result.success ? "passed" : "failed", result.detail);
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
        t->backend->routable.store(t->tracker.up() || (all_down && fail_open),
                                   std::memory_order_relaxed);
    }
}

}  // namespace fulcrum
