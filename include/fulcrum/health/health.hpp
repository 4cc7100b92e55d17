#pragma once
// Active health checks: HTTP GET probes on libuv's thread pool, scheduled by timers on
// the main loop, results applied on the main loop. A probe never runs on a worker loop,
// so a hanging backend can only cost its own probe's timeout.

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
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

// What one probe saw.
struct ProbeResult {
    bool success = false;
    std::string detail;  // "status 200", "connection refused", "timeout", ...
};

// One blocking probe with hard connect/read/write timeouts (runs on a pool thread). With
// health.send_proxy it starts with the backend's PROXY header version, as a LOCAL header.
ProbeResult probe_backend(const HealthConfig& health, const BackendConfig& backend);

class HealthChecker {
public:
    explicit HealthChecker(uv_loop_t* loop);
    ~HealthChecker();
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    // Checks every backend of these services that have health checks enabled, replacing
    // what was checked before. A backend kept from before keeps its health state. Probes
    // are spread over each service's interval.
    void configure(const std::vector<ServiceState>& services);
    // Stops probing; probes in flight finish on their own and their results are dropped.
    void stop();

private:
    struct Target;
    struct ServiceGroup;
    static void on_timer(uv_timer_t* timer);
    static void on_timer_closed(uv_handle_t* handle);
    static void run_probe(uv_work_t* work);
    static void after_probe(uv_work_t* work, int status);
    void apply(Target& target, const ProbeResult& result);
    void transition(Target& target, HealthTracker::Change change, const std::string& why);
    static void update_routing(ServiceGroup& group);
    // Frees a retired target once its timer is closed and no probe of it is in flight.
    void release_if_done(Target* target);

    uv_loop_t* loop_;
    std::vector<std::unique_ptr<Target>> targets_;
    std::vector<std::unique_ptr<Target>> retired_;
};

}  // namespace fulcrum
