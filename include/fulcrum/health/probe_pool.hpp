#pragma once
// The threads that run blocking health probes, owned by the main loop. Unlike libuv's
// own pool (sized once, at first use) it can be resized at every reload, so that every
// checked backend keeps a thread of its own and a hanging backend costs only its own
// probe's timeout. A job runs on a pool thread; its completion runs on the loop.

#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fulcrum {

class ProbePool {
public:
    // Runs on a pool thread; must not throw.
    using Work = std::function<void()>;
    // Runs on the loop thread after its work, or with ran = false when stop() dropped
    // the job before it started.
    using Done = std::function<void(bool ran)>;

    // No threads until resize(). Throws std::runtime_error if libuv cannot set it up.
    explicit ProbePool(uv_loop_t* loop);
    // Joins whatever threads are left; call stop() and run the loop first, so that the
    // loop handle is closed too.
    ~ProbePool();
    ProbePool(const ProbePool&) = delete;
    ProbePool& operator=(const ProbePool&) = delete;

    // Sets the number of threads. Extra threads leave once their current job is done.
    void resize(std::size_t threads);
    void submit(Work work, Done done);
    // Drops the queued jobs (their Done runs now, with ran = false) and lets the running
    // ones finish; once they have, the loop joins the threads and closes its handle, and
    // the loop can end. Later calls do nothing.
    void stop();
    // Threads started and not yet joined (on the loop thread).
    std::size_t threads() const { return threads_.size(); }

private:
    struct Job {
        Work work;
        Done done;
    };
    void run_thread();
    // Has the loop run reap() (from a pool thread).
    void wake_loop();
    static void on_async(uv_async_t* handle);
    // Runs completions and joins the threads that have left (on the loop thread).
    void reap();

    uv_async_t async_{};
    bool stopped_ = false;  // stop() was called (loop thread only)

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> queue_;                // waiting for a thread
    std::deque<Done> completed_;           // waiting for the loop
    std::vector<std::thread::id> exited_;  // threads that left, waiting to be joined
    std::size_t wanted_ = 0;               // threads asked for
    std::size_t live_ = 0;                 // threads started that have not left
    bool stopping_ = false;                // all threads leave once idle

    std::vector<std::thread> threads_;  // loop thread only
};

}  // namespace fulcrum
