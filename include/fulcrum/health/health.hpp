#pragma once
// Active health checks, scheduled by timers on the main loop, results applied on the main
// loop: HTTP GET probes on a probe pool with a thread per backend checked over HTTP, the
// other types (tcp_probe.hpp) on the main loop itself, without blocking. A probe never
// runs on a worker loop and ends at its timeout, so a hanging backend can only cost its
// own probe's timeout.

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/health/http_probe.hpp"
#include "fulcrum/health/probe_pool.hpp"
#include "fulcrum/lb/service_state.hpp"

namespace fulcrum {

// The rise/fall state machine of one backend. A backend starts up (like HAProxy): it is
// taken out after `fall` consecutive failures and back in after `rise` consecutive successes.
class HealthTracker {
public:
    enum class Change { none, went_up, went_down };

    HealthTracker(int rise, int fall) : rise_(rise), fall_(fall) {}
    Change record(bool success);
    // Passive detection saw it fail: down now, back after `rise` successes.
    Change force_down();
    bool up() const { return up_; }
    // The same state under a reloaded configuration's rise and fall.
    HealthTracker with_thresholds(const HealthConfig& health) const {
        HealthTracker t(health.rise, health.fall);
        t.up_ = up_;
        return t;
    }

private:
    int rise_;
    int fall_;
    bool up_ = true;
    int streak_ = 0;  // consecutive results that disagree with the current state
};

class HealthChecker {
public:
    explicit HealthChecker(uv_loop_t* loop);
    ~HealthChecker();
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    // Checks every backend of these services that have health checks enabled, replacing
    // what was checked before. A backend kept from before keeps its health state. Probes
    // are spread over each service's interval. The probe pool gets a thread per backend
    // checked over HTTP (bounded; none without any).
    void configure(const std::vector<ServiceState>& services);
    // Stops probing; probes in flight finish within their timeout and their results are
    // dropped. The loop ends once they have.
    void stop();

    // Probe threads, whatever the number of checked backends.
    static constexpr std::size_t min_probe_threads = 4;
    static constexpr std::size_t max_probe_threads = 128;

private:
    struct Target;
    struct ServiceGroup;
    static void on_timer(uv_timer_t* timer);
    static void on_timer_closed(uv_handle_t* handle);
    static void run_probe(Target& target);
    void after_probe(Target& target, bool ran);
    void apply(Target& target, const ProbeResult& result);
    void transition(Target& target, HealthTracker::Change change, const std::string& why);
    static void update_routing(ServiceGroup& group);
    // Frees a retired target once its timer is closed and no probe of it is in flight.
    void release_if_done(Target* target);

    uv_loop_t* loop_;
    std::vector<std::unique_ptr<Target>> targets_;
    std::vector<std::unique_ptr<Target>> retired_;
    ProbePool pool_;  // last: destroyed first, so no probe outlives its target
};

}  // namespace fulcrum
