#include "fulcrum/net/worker_context.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>

namespace fulcrum {

namespace {

// Spare write blocks kept per worker: enough for bursts of stalls without holding much.
constexpr std::size_t max_spare_blocks = 16;

void close_pipe(const Pipe& pipe) {
    ::close(pipe.read);
    ::close(pipe.write);
}

}  // namespace

WorkerContext::WorkerContext(unsigned id, unsigned workers, uv_loop_t* loop,
                             std::atomic<std::size_t>& open_sessions, WorkerTraffic& traffic,
                             Post post)
    : id_(id),
      workers_(workers),
      loop_(loop),
      post_(std::move(post)),
      open_sessions_(open_sessions),
      scratch_(std::make_unique_for_overwrite<char[]>(scratch_size)),
      traffic_(traffic) {}

WorkerContext::~WorkerContext() {
    for (const Pipe& pipe : spare_pipes_) close_pipe(pipe);
}

void WorkerContext::configure(const Config& config) {
    max_connections_ = config.runtime.max_connections;
    access_log_ = config.log.access_log;
    // This worker's share, rounded up: a nonzero setting gives every worker a pipe.
    pipe_limit_ = (config.runtime.splice_pipes + workers_ - 1) / workers_;
}

std::unique_ptr<WorkerContext::WriteBlock> WorkerContext::take_block() {
    if (spare_blocks_.empty()) return std::make_unique_for_overwrite<WriteBlock>();
    auto block = std::move(spare_blocks_.back());
    spare_blocks_.pop_back();
    return block;
}

void WorkerContext::give_block(std::unique_ptr<WriteBlock> block) {
    if (spare_blocks_.size() < max_spare_blocks) spare_blocks_.push_back(std::move(block));
}

bool WorkerContext::splice_enabled() const {
    return !splice_disabled_ && pipe_limit_ > 0;
}

std::optional<Pipe> WorkerContext::take_pipe() {
    if (!splice_enabled()) return std::nullopt;
    Pipe pipe;
    if (!spare_pipes_.empty()) {
        pipe = spare_pipes_.back();
        spare_pipes_.pop_back();
    } else {
        int fds[2];
        if (pipes_in_use_ >= pipe_limit_ || ::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
            // Out of pipes (or descriptors): this transfer stays on the copy path.
            traffic_.pool_exhausted.add();
            return std::nullopt;
        }
        pipe = {fds[0], fds[1]};
    }
    ++pipes_in_use_;
    count_pipes();
    return pipe;
}

void WorkerContext::give_pipe(Pipe pipe) {
    --pipes_in_use_;
    // Kept while within the limit (which a reload may have lowered).
    if (pipes_in_use_ + spare_pipes_.size() < pipe_limit_ && !splice_disabled_) {
        spare_pipes_.push_back(pipe);
    } else {
        close_pipe(pipe);
    }
    count_pipes();
}

void WorkerContext::drop_pipe(Pipe pipe) {
    --pipes_in_use_;
    close_pipe(pipe);
    count_pipes();
}

void WorkerContext::count_pipes() {
    traffic_.pipes_in_use.set(pipes_in_use_);
    traffic_.pipes_idle.set(spare_pipes_.size());
}

void WorkerContext::disable_splice(int error) {
    if (splice_disabled_) return;
    splice_disabled_ = true;
    spdlog::warn("worker {}: the kernel refused splice ({}): copying from now on", id_,
                 std::strerror(error));
    for (const Pipe& pipe : spare_pipes_) close_pipe(pipe);
    spare_pipes_.clear();
    count_pipes();
}

bool WorkerContext::admit() const {
    return open_sessions_.load(std::memory_order_relaxed) <= max_connections_;
}

}  // namespace fulcrum
