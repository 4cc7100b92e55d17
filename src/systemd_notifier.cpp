#include "fulcrum/systemd_notifier.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>

#if FULCRUM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace fulcrum {

namespace {

// How often STATUS= may change, at most; the watchdog may need the timer sooner.
constexpr std::uint64_t status_period_ms = 5000;

}  // namespace

SystemdNotifier::SystemdNotifier(uv_loop_t* loop, std::function<std::string()> status)
    : status_(std::move(status)) {
#if FULCRUM_HAVE_SYSTEMD
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && *socket != '\0';
    if (!enabled_) return;
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) watchdog_usec_ = usec;
    if (int rc = uv_timer_init(loop, &timer_); rc < 0) {
        throw std::runtime_error(std::string("uv_timer_init: ") + uv_strerror(rc));
    }
    timer_.data = this;
    timer_open_ = true;
    std::uint64_t period = status_period_ms;
    if (watchdog_usec_ > 0) period = std::clamp<std::uint64_t>(watchdog_usec_ / 2000, 1, period);
    if (int rc = uv_timer_start(&timer_, on_tick, period, period); rc < 0) {
        close();
        throw std::runtime_error(std::string("uv_timer_start: ") + uv_strerror(rc));
    }
    spdlog::debug("systemd notifications on {}{}", socket,
                  watchdog_usec_ > 0 ? fmt::format(", watchdog every {} ms", period) : "");
#else
    (void)loop;
#endif
}

SystemdNotifier::~SystemdNotifier() {
    close();
}

void SystemdNotifier::close() {
    if (!timer_open_) return;
    timer_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void SystemdNotifier::ready() {
    if (!enabled_) return;
    last_status_ = status_();
    send("READY=1\nSTATUS=" + last_status_);
}

void SystemdNotifier::reloading() {
    if (!enabled_) return;
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000 +
                      static_cast<std::uint64_t>(now.tv_nsec) / 1000;
    send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
}

void SystemdNotifier::stopping() {
    if (!enabled_) return;
    send("STOPPING=1\nSTATUS=draining: " + status_());
}

void SystemdNotifier::hand_over(pid_t pid) {
    if (!enabled_) return;
    send(fmt::format("MAINPID={}", pid));
    enabled_ = false;
    close();
}

void SystemdNotifier::on_tick(uv_timer_t* timer) {
    auto* self = static_cast<SystemdNotifier*>(timer->data);
    if (self->watchdog_usec_ > 0) self->send("WATCHDOG=1");
    self->send_status();
}

void SystemdNotifier::send_status() {
    std::string status = status_();
    if (status == last_status_) return;
    last_status_ = std::move(status);
    send("STATUS=" + last_status_);
}

void SystemdNotifier::send([[maybe_unused]] const std::string& message) {
#if FULCRUM_HAVE_SYSTEMD
    if (int rc = sd_notify(0, message.c_str()); rc < 0) {
        spdlog::warn("sd_notify: {}", std::strerror(-rc));
    }
#endif
}

}  // namespace fulcrum
