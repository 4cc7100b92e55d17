#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "fulcrum/health/probe_pool.hpp"

using namespace fulcrum;
using namespace std::chrono_literals;

namespace {

// Runs the loop without blocking until `condition` holds (true) or 10 s pass (false).
bool run_until(uv_loop_t* loop, const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        uv_run(loop, UV_RUN_NOWAIT);
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Jobs that wait until `release()` (or 10 s), counting how many wait at once.
class Gate {
public:
    void pass() {
        std::unique_lock lock(mutex_);
        ++waiting_;
        changed_.notify_all();
        changed_.wait_for(lock, 10s, [this] { return open_; });
        --waiting_;
    }
    // Waits until `n` jobs wait at the gate at once (false after `timeout`).
    bool wait_for_waiting(int n, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return waiting_ == n; });
    }
    void release() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int waiting_ = 0;
    bool open_ = false;
};

struct Loop {
    Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
    ~Loop() { CHECK(uv_loop_close(&loop) == 0); }
    uv_loop_t loop{};
};

}  // namespace

TEST_CASE("probe pool: jobs run on its threads, completions on the loop", "[health]") {
    Loop l;
    ProbePool pool(&l.loop);
    pool.resize(4);
    CHECK(pool.threads() == 4);
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<int> off_loop{0};
    int done = 0;
    int done_off_loop = 0;
    for (int i = 0; i < 100; ++i) {
        pool.submit([&] { off_loop += std::this_thread::get_id() != loop_thread; },
                    [&](bool ran) {
                        done += ran;
                        done_off_loop += std::this_thread::get_id() != loop_thread;
                    });
    }
    REQUIRE(run_until(&l.loop, [&] { return done == 100; }));
    CHECK(off_loop == 100);
    CHECK(done_off_loop == 0);
    pool.stop();
    CHECK(uv_run(&l.loop, UV_RUN_DEFAULT) == 0);  // returns once the threads are joined
    CHECK(pool.threads() == 0);
}

TEST_CASE("probe pool: resizing changes how many jobs run at once", "[health]") {
    Loop l;
    ProbePool pool(&l.loop);
    pool.resize(4);
    pool.resize(8);  // up: eight jobs wait at once
    Gate gate;
    int done = 0;
    for (int i = 0; i < 8; ++i) pool.submit([&] { gate.pass(); }, [&](bool) { ++done; });
    CHECK(gate.wait_for_waiting(8));
    gate.release();
    REQUIRE(run_until(&l.loop, [&] { return done == 8; }));

    pool.resize(2);  // down: the idle threads leave and are joined
    REQUIRE(run_until(&l.loop, [&] { return pool.threads() == 2; }));
    Gate second;
    for (int i = 0; i < 3; ++i) pool.submit([&] { second.pass(); }, [&](bool) { ++done; });
    CHECK(second.wait_for_waiting(2));
    CHECK_FALSE(second.wait_for_waiting(3, 200ms));  // the third job waits for a thread
    second.release();
    REQUIRE(run_until(&l.loop, [&] { return done == 11; }));
    pool.stop();
    CHECK(uv_run(&l.loop, UV_RUN_DEFAULT) == 0);
}

TEST_CASE("probe pool: stop drops queued jobs and lets running ones finish", "[health]") {
    Loop l;
    ProbePool pool(&l.loop);
    pool.resize(2);
    Gate gate;
    int ran = 0;
    int dropped = 0;
    for (int i = 0; i < 5; ++i) {
        pool.submit([&] { gate.pass(); }, [&](bool r) { r ? ++ran : ++dropped; });
    }
    REQUIRE(gate.wait_for_waiting(2));
    pool.stop();
    CHECK(dropped == 3);  // at once, on the loop thread
    pool.submit([] {}, [&](bool r) { r ? ++ran : ++dropped; });
    CHECK(dropped == 4);  // a stopped pool runs nothing
    gate.release();
    CHECK(uv_run(&l.loop, UV_RUN_DEFAULT) == 0);  // the running jobs completed, threads joined
    CHECK(ran == 2);
    CHECK(pool.threads() == 0);
}
