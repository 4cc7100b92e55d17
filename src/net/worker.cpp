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

// Spare write blocks kept per worker: enough for bursts of stalls without holding much.
constexpr std::size_t max_spare_blocks = 16;

void close_pipe(const Pipe& pipe) {
    ::close(pipe.read);
    ::close(pipe.write);
}

void check(int rc, const char* what) {
    if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

}  // namespace

Worker::Worker(unsigned id, unsigned workers, std::shared_ptr<const Config> config,
               std::atomic<std::size_t>& open_sessions, SpliceTraffic& splice,
               std::function<void()> on_stopped)
    : id_(id),
      workers_(workers),
      config_(std::move(config)),
      open_sessions_(open_sessions),
      on_stopped_(std::move(on_stopped)),
      scratch_(std::make_unique_for_overwrite<char[]>(scratch_size)),
      splice_(splice) {
    check(uv_loop_init(&loop_), "uv_loop_init");
    check(uv_async_init(&loop_, &async_, on_async), "uv_async_init");
    async_.data = this;
    check(uv_timer_init(&loop_, &shutdown_timer_), "uv_timer_init");
    shutdown_timer_.data = this;
}

Worker::~Worker() {
    if (thread_.joinable()) {
        thread_.join();
    } else {
        // Never started (another listener failed to bind): close what is open here.
        for (auto& listener : listeners_) listener->close();
        uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
    }
    for (const Pipe& pipe : spare_pipes_) close_pipe(pipe);
    if (int rc = uv_loop_close(&loop_); rc < 0) {
        spdlog::error("worker {}: loop still has handles at exit: {}", id_, uv_strerror(rc));
    }
}

void Worker::listen(ServiceState service, ListeningSocket socket) {
    listeners_.push_back(std::make_unique<Listener>(*this, std::move(service), socket));
    listeners_.back()->start();
}

Listener* Worker::find_listener(const std::string& name) {
    for (auto& listener : listeners_) {
        if (listener->service().name == name) return listener.get();
    }
    return nullptr;
}

void Worker::update_service(ServiceState service) {
    if (Listener* listener = find_listener(service.config->name)) {
        listener->update(std::move(service));
    }
}

void Worker::retire_service(const std::string& name) {
    auto it = std::find_if(listeners_.begin(), listeners_.end(),
                           [&](const auto& l) { return l->service().name == name; });
    if (it == listeners_.end()) return;
    (*it)->close();
    retired_.push_back(std::move(*it));
    listeners_.erase(it);
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
}

std::unique_ptr<Worker::WriteBlock> Worker::take_block() {
    if (spare_blocks_.empty()) return std::make_unique_for_overwrite<WriteBlock>();
    auto block = std::move(spare_blocks_.back());
    spare_blocks_.pop_back();
    return block;
}

void Worker::give_block(std::unique_ptr<WriteBlock> block) {
    if (spare_blocks_.size() < max_spare_blocks) spare_blocks_.push_back(std::move(block));
}

std::size_t Worker::pipe_limit() const {
    // This worker's share, rounded up: a nonzero setting gives every worker a pipe.
    const std::size_t total = config_->runtime.splice_pipes;
    return (total + workers_ - 1) / workers_;
}

bool Worker::splice_enabled() const {
    return !splice_disabled_ && pipe_limit() > 0;
}

std::optional<Pipe> Worker::take_pipe() {
    if (!splice_enabled()) return std::nullopt;
    Pipe pipe;
    if (!spare_pipes_.empty()) {
        pipe = spare_pipes_.back();
        spare_pipes_.pop_back();
    } else {
        int fds[2];
        if (pipes_in_use_ >= pipe_limit() || ::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
            // Out of pipes (or descriptors): this transfer stays on the copy path.
            splice_.pool_exhausted.add();
            return std::nullopt;
        }
        pipe = {fds[0], fds[1]};
    }
    ++pipes_in_use_;
    count_pipes();
    return pipe;
}

void Worker::give_pipe(Pipe pipe) {
    --pipes_in_use_;
    // Kept while within the limit (which a reload may have lowered).
    if (pipes_in_use_ + spare_pipes_.size() < pipe_limit() && !splice_disabled_) {
        spare_pipes_.push_back(pipe);
    } else {
        close_pipe(pipe);
    }
    count_pipes();
}

void Worker::drop_pipe(Pipe pipe) {
    --pipes_in_use_;
    close_pipe(pipe);
    count_pipes();
}

void Worker::count_pipes() {
    splice_.pipes_in_use.set(pipes_in_use_);
    splice_.pipes_idle.set(spare_pipes_.size());
}

void Worker::disable_splice(int error) {
    if (splice_disabled_) return;
    splice_disabled_ = true;
    spdlog::warn("worker {}: the kernel refused splice ({}): copying from now on", id_,
                 std::strerror(error));
    for (const Pipe& pipe : spare_pipes_) close_pipe(pipe);
    spare_pipes_.clear();
    count_pipes();
}

bool Worker::admit() {
    return open_sessions_.load(std::memory_order_relaxed) <= config_->runtime.max_connections;
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
