#include "fulcrum/net/worker.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "fulcrum/net/session.hpp"

namespace fulcrum {

namespace {

void check(int rc, const char* what) {
    if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

}  // namespace

Worker::Worker(unsigned id, unsigned workers, std::shared_ptr<const Config> config,
               std::atomic<std::size_t>& open_sessions, WorkerTraffic& splice,
               std::function<void()> on_stopped)
    : id_(id), open_sessions_(open_sessions), on_stopped_(std::move(on_stopped)) {
    check(uv_loop_init(&loop_), "uv_loop_init");
    context_ = std::make_unique<WorkerContext>(id, workers, &loop_, open_sessions, splice,
                                               [this](auto task) { post(std::move(task)); });
    loop_.data = context_.get();  // how sessions find their worker without a pointer each
    check(uv_async_init(&loop_, &async_, on_async), "uv_async_init");
    async_.data = this;
    check(uv_timer_init(&loop_, &shutdown_timer_), "uv_timer_init");
    shutdown_timer_.data = this;
    check(uv_timer_init(&loop_, &drain_timer_), "uv_timer_init");
    drain_timer_.data = this;
    set_config(std::move(config));
}

Worker::~Worker() {
    if (thread_.joinable()) {
        thread_.join();
    } else {
        // Never started (another listener failed to bind): close what is open here.
        for (auto& listener : listeners_) listener->close();
        uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
    }
    context_.reset();  // its pipes
    if (int rc = uv_loop_close(&loop_); rc < 0) {
        spdlog::error("worker {}: loop still has handles at exit: {}", id_, uv_strerror(rc));
    }
}

void Worker::set_config(std::shared_ptr<const Config> config) {
    config_ = std::move(config);
    context_->configure(*config_);
    // The check runs only while some service has a drain deadline.
    const bool deadlines = std::any_of(config_->services.begin(), config_->services.end(),
                                       [](const ServiceConfig& s) { return s.drain_timeout; });
    if (deadlines && !stopping_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&drain_timer_))) {
        // Cannot fail on an initialised timer with a callback.
        uv_timer_start(&drain_timer_, on_drain_check, 1000, 1000);
    } else if (!deadlines) {
        uv_timer_stop(&drain_timer_);
    }
}

void Worker::on_drain_check(uv_timer_t* timer) {
    auto* self = static_cast<Worker*>(timer->data);
    const std::int64_t now = steady_now_ms();
    // Closing is asynchronous: a session leaves the list in a later close callback.
    for (Session* s = self->sessions_; s != nullptr; s = s->next) s->enforce_drain_deadline(now);
}

void Worker::listen(const std::string& key, std::shared_ptr<const ListenRoutes> routes,
                    ListeningSocket socket) {
    listeners_.push_back(std::make_unique<Listener>(*this, key, std::move(routes), socket));
    listeners_.back()->start();
}

void Worker::update_listener(const std::string& key, std::shared_ptr<const ListenRoutes> routes) {
    for (auto& listener : listeners_) {
        if (listener->key() == key) listener->update(routes);
    }
}

void Worker::retire_listener(const std::string& key) {
    std::erase_if(listeners_, [&](std::unique_ptr<Listener>& listener) {
        if (listener->key() != key) return false;
        listener->close();
        retired_.push_back(std::move(listener));
        return true;
    });
}

void Worker::collect_retired() {
    std::erase_if(retired_, [](const auto& listener) { return listener->finished(); });
}

void Worker::post(std::function<void()> task) {
    {
        std::lock_guard lock(inbox_mutex_);
        inbox_.push_back(std::move(task));
    }
    uv_async_send(&async_);
}

void Worker::start() {
    thread_ = std::thread([this] {
        uv_run(&loop_, UV_RUN_DEFAULT);
        on_stopped_();
    });
}

void Worker::request_stop() {
    if (!stop_requested_.exchange(true)) post([this] { begin_stop(); });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::on_async(uv_async_t* async) {
    auto* self = static_cast<Worker*>(async->data);
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(self->inbox_mutex_);
        tasks.swap(self->inbox_);
    }
    for (auto& task : tasks) task();
}

void Worker::begin_stop() {
    stopping_ = true;
    for (auto& listener : listeners_) listener->close();
    if (session_count_ > 0) {
        spdlog::info("worker {}: waiting for {} sessions to finish", id_, session_count_);
        uv_timer_start(&shutdown_timer_, on_shutdown_timeout,
                       static_cast<std::uint64_t>(config_->runtime.shutdown_timeout.count()), 0);
    }
    end_loop_if_idle();
}

void Worker::on_shutdown_timeout(uv_timer_t* timer) {
    auto* self = static_cast<Worker*>(timer->data);
    spdlog::warn("worker {}: shutdown timeout: closing {} sessions", self->id_,
                 self->session_count_);
    // Closing is asynchronous: sessions leave the list in later close callbacks.
    for (Session* s = self->sessions_; s != nullptr; s = s->next) s->abort(SessionEnd::shutdown);
}

void Worker::end_loop_if_idle() {
    if (!stopping_ || session_count_ > 0 ||
        uv_is_closing(reinterpret_cast<uv_handle_t*>(&async_))) {
        return;
    }
    // With these closed the loop has no handle left and uv_run returns.
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
}

void Worker::add(Session* session) {
    session->next = sessions_;
    if (sessions_ != nullptr) sessions_->prev = session;
    sessions_ = session;
    ++session_count_;
    open_sessions_.fetch_add(1, std::memory_order_relaxed);
}

void Worker::remove(Session* session) {
    if (session->prev != nullptr) session->prev->next = session->next;
    if (session->next != nullptr) session->next->prev = session->prev;
    if (sessions_ == session) sessions_ = session->next;
    --session_count_;
    open_sessions_.fetch_sub(1, std::memory_order_relaxed);
    if (!retired_.empty()) collect_retired();
    end_loop_if_idle();
}

}  // namespace fulcrum
