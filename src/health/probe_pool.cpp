#include "fulcrum/health/probe_pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace fulcrum {

ProbePool::ProbePool(uv_loop_t* loop) {
    if (int rc = uv_async_init(loop, &async_, on_async); rc < 0) {
        throw std::runtime_error(std::string("probe pool: uv_async_init: ") + uv_strerror(rc));
    }
    async_.data = this;
}

ProbePool::~ProbePool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        queue_.clear();
    }
    wake_.notify_all();
    for (std::thread& thread : threads_) thread.join();
}

void ProbePool::resize(std::size_t threads) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        wanted_ = threads;
        for (; live_ < wanted_; ++live_) threads_.emplace_back([this] { run_thread(); });
    }
    wake_.notify_all();  // idle threads beyond the new size leave
}

void ProbePool::submit(Work work, Done done) {
    if (stopped_) {
        done(false);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        queue_.push_back({std::move(work), std::move(done)});
    }
    wake_.notify_one();
}

void ProbePool::stop() {
    if (stopped_) return;
    stopped_ = true;
    std::deque<Job> dropped;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        dropped.swap(queue_);
    }
    wake_.notify_all();
    for (Job& job : dropped) job.done(false);
    reap();
}

void ProbePool::run_thread() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || live_ > wanted_ || !queue_.empty(); });
        if (stopping_ || live_ > wanted_) break;
        Job job = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        job.work();
        lock.lock();
        completed_.push_back(std::move(job.done));
        wake_loop();
    }
    --live_;
    exited_.push_back(std::this_thread::get_id());
    wake_loop();  // the loop closes the handle only after joining this thread
}

void ProbePool::wake_loop() {
    if (int rc = uv_async_send(&async_); rc < 0) {
        spdlog::error("probe pool: cannot wake the main loop: {}", uv_strerror(rc));
    }
}

void ProbePool::on_async(uv_async_t* handle) {
    static_cast<ProbePool*>(handle->data)->reap();
}

void ProbePool::reap() {
    std::deque<Done> completed;
    std::vector<std::thread::id> exited;
    {
        std::lock_guard lock(mutex_);
        completed.swap(completed_);
        exited.swap(exited_);
    }
    for (Done& done : completed) done(true);
    for (std::thread::id id : exited) {
        auto it = std::find_if(threads_.begin(), threads_.end(),
                               [id](const std::thread& t) { return t.get_id() == id; });
        it->join();
        threads_.erase(it);
    }
    auto* handle = reinterpret_cast<uv_handle_t*>(&async_);
    if (stopped_ && threads_.empty() && !uv_is_closing(handle)) uv_close(handle, nullptr);
}

}  // namespace fulcrum
