#pragma once
// Tells systemd where fulcrum is in its life (a Type=notify unit): READY=1 once every
// listener is bound, RELOADING=1 and READY=1 around a reload, STOPPING=1 at drain, a
// STATUS= line with the service and session counts, and WATCHDOG=1 at half the unit's
// WatchdogSec. Off at no cost when NOTIFY_SOCKET is unset or the build has no libsystemd.

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

namespace fulcrum {

class SystemdNotifier {
public:
    // `status` gives the STATUS= text; it is sent when it changes, at most every few
    // seconds, from a timer on `loop`.
    SystemdNotifier(uv_loop_t* loop, std::function<std::string()> status);
    ~SystemdNotifier();
    SystemdNotifier(const SystemdNotifier&) = delete;
    SystemdNotifier& operator=(const SystemdNotifier&) = delete;

    void ready();
    void reloading();
    void stopping();
    // A binary upgrade: `pid` is the service's main process from now on (MAINPID=), and
    // this process, draining, tells systemd nothing more.
    void hand_over(pid_t pid);
    // Closes the timer; the loop then has nothing of ours left. Idempotent.
    void close();

private:
    static void on_tick(uv_timer_t* timer);
    void send(const std::string& message);
    void send_status();

    std::function<std::string()> status_;
    uv_timer_t timer_{};
    bool enabled_ = false;
    bool timer_open_ = false;
    std::uint64_t watchdog_usec_ = 0;
    std::string last_status_;
};

}  // namespace fulcrum
