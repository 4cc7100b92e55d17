#include "fulcrum/server.hpp"

#include <spdlog/spdlog.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fulcrum/backend.hpp"
#include "fulcrum/health.hpp"
#include "fulcrum/worker.hpp"

namespace fulcrum {

namespace {

void check(int rc, const char* what) {
    if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

unsigned worker_count(const RuntimeConfig& runtime) {
    if (runtime.workers > 0) return runtime.workers;
    return std::max(1u, std::thread::hardware_concurrency());
}

// Keys the configuration accepts before this version acts on them: say so rather than
// let an operator believe they are in force.
void warn_unimplemented(const Config& config) {
    if (config.admin.listen) {
        spdlog::warn("admin.listen is set, but this version serves no admin endpoint yet");
    }
}

// Probes block a pool thread for up to their timeout: give each checked backend a
// thread (bounded), so a hanging backend never delays the probes of the others. libuv
// reads the variable when the pool is first used; an operator's own setting wins.
void size_probe_pool(std::size_t checked_backends) {
    constexpr std::size_t min_threads = 4;
    constexpr std::size_t max_threads = 128;
    const std::size_t threads = std::clamp(checked_backends, min_threads, max_threads);
    setenv("UV_THREADPOOL_SIZE", std::to_string(threads).c_str(), /*overwrite=*/0);
}

// State of the main loop, reached from libuv callbacks through handle->data.
struct MainLoop {
    uv_loop_t loop{};
    uv_signal_t sigint{};
    uv_signal_t sigterm{};
    uv_async_t worker_stopped{};
    std::vector<std::unique_ptr<Worker>>* workers = nullptr;
    HealthChecker* health = nullptr;
    std::atomic<std::size_t> stopped{0};
    bool stopping = false;

    static void on_signal(uv_signal_t* handle, int signum) {
        auto* self = static_cast<MainLoop*>(handle->data);
        if (self->stopping) {
            spdlog::warn("second {}: exiting now", strsignal(signum));
            std::_Exit(1);
        }
        self->stopping = true;
        spdlog::info("{}: closing listeners, letting open sessions finish", strsignal(signum));
        self->health->stop();
        for (auto& worker : *self->workers) worker->request_stop();
    }

    static void on_worker_stopped(uv_async_t* handle) {
        auto* self = static_cast<MainLoop*>(handle->data);
        if (self->stopped.load() < self->workers->size()) return;
        for (auto* h : {reinterpret_cast<uv_handle_t*>(&self->sigint),
                        reinterpret_cast<uv_handle_t*>(&self->sigterm),
                        reinterpret_cast<uv_handle_t*>(&self->worker_stopped)}) {
            uv_close(h, nullptr);
        }
    }
};

}  // namespace

Server::Server(std::shared_ptr<const Config> config) : config_(std::move(config)) {}

int Server::run() {
    std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error code, not a signal

    MainLoop main;
    check(uv_loop_init(&main.loop), "uv_loop_init");
    std::vector<std::unique_ptr<Worker>> workers;
    main.workers = &workers;
    check(uv_async_init(&main.loop, &main.worker_stopped, MainLoop::on_worker_stopped),
          "uv_async_init");
    main.worker_stopped.data = &main;

    HealthChecker health(&main.loop);
    main.health = &health;
    std::atomic<std::size_t> open_sessions{0};
    const unsigned count = worker_count(config_->runtime);
    try {
        for (unsigned i = 0; i < count; ++i) {
            workers.push_back(std::make_unique<Worker>(i, config_, open_sessions, [&main] {
                main.stopped.fetch_add(1);
                uv_async_send(&main.worker_stopped);
            }));
        }
        for (const ServiceConfig& service_config : config_->services) {
            auto service = std::make_shared<const ServiceConfig>(service_config);
            auto pool = std::make_shared<const Pool>(service_config);
            Address address = service->listen;
            for (auto& worker : workers) {
                // With port 0 the first worker's bound port is shared by the others.
                address = worker->listen(service, pool, address);
            }
            health.add_service(service, pool);
            spdlog::info("service {} listening on {} ({} backends, {})", service->name,
                         address.numeric(), pool->backends.size(), to_string(service->strategy));
        }
    } catch (...) {
        health.stop();
        workers.clear();
        uv_close(reinterpret_cast<uv_handle_t*>(&main.worker_stopped), nullptr);
        uv_run(&main.loop, UV_RUN_DEFAULT);
        uv_loop_close(&main.loop);
        throw;
    }

    warn_unimplemented(*config_);
    for (auto* signal : {&main.sigint, &main.sigterm}) {
        check(uv_signal_init(&main.loop, signal), "uv_signal_init");
        signal->data = &main;
    }
    check(uv_signal_start(&main.sigint, MainLoop::on_signal, SIGINT), "uv_signal_start");
    check(uv_signal_start(&main.sigterm, MainLoop::on_signal, SIGTERM), "uv_signal_start");
    size_probe_pool(health.target_count());
    health.start();
    for (auto& worker : workers) worker->start();
    spdlog::info("fulcrum running with {} worker{}", count, count == 1 ? "" : "s");

    uv_run(&main.loop, UV_RUN_DEFAULT);
    workers.clear();  // joins the threads
    check(uv_loop_close(&main.loop), "uv_loop_close");
    spdlog::info("all sessions finished; exiting");
    return 0;
}

}  // namespace fulcrum
