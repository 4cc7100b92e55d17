#pragma once
// What a session needs of the worker thread it runs on, and nothing more: the loop, the
// scratch buffer every read lands in, reusable write blocks, the splice pipe pool and
// the admission limit. Owned by the Worker; used on its thread only.

#include <uv.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

// Both ends of a pipe that carries a session's bytes from one socket to the other (splice).
struct Pipe {
    int read = -1;
    int write = -1;
};

class WorkerContext {
public:
    // Size of the read buffer every session reads into; a session copies out only what
    // its peer could not take at once.
    static constexpr std::size_t scratch_size = 64 * 1024;

    // Runs a task on the worker's loop thread, soon; callable from any thread.
    using Post = std::function<void(std::function<void()>)>;

    // `workers` is how many there are: each takes its share of runtime.splice_pipes.
    WorkerContext(unsigned id, unsigned workers, uv_loop_t* loop,
                  std::atomic<std::size_t>& open_sessions, WorkerTraffic& traffic, Post post);
    ~WorkerContext();
    WorkerContext(const WorkerContext&) = delete;
    WorkerContext& operator=(const WorkerContext&) = delete;

    // A (re)configuration: limits and logging for sessions from now on.
    void configure(const Config& config);

    uv_loop_t* loop() const { return loop_; }
    // Thread-safe: runs `task` on this worker's thread (how another worker hands over a
    // backend slot to a session waiting here).
    void post(std::function<void()> task) const { post_(std::move(task)); }
    unsigned id() const { return id_; }
    bool access_log() const { return access_log_; }
    uv_buf_t scratch() { return uv_buf_init(scratch_.get(), scratch_size); }

    // A write in flight: its libuv request and up to scratch_size bytes a full peer could
    // not take yet. Only a stalled direction holds one, so an idle session holds none.
    struct WriteBlock {
        uv_write_t req;
        char data[scratch_size];
    };
    // Reused, so a stalled stream does not cost an allocation per stall; freed past a
    // small reserve.
    std::unique_ptr<WriteBlock> take_block();
    void give_block(std::unique_ptr<WriteBlock> block);

    // Pipes for splice, at most this worker's share of runtime.splice_pipes open at once
    // (each costs two descriptors). take_pipe gives nothing when splice is off or
    // disabled, or every pipe is in use; a pipe given back must be empty, one that may
    // hold bytes is dropped (closed).
    bool splice_enabled() const;
    std::optional<Pipe> take_pipe();
    void give_pipe(Pipe pipe);
    void drop_pipe(Pipe pipe);
    // The kernel refused splice (EINVAL, ENOSYS): this worker copies from now on.
    void disable_splice(int error);
    WorkerTraffic& traffic() { return traffic_; }

    // Counts a new session against runtime.max_connections; false when over the limit.
    bool admit() const;

private:
    void count_pipes();

    unsigned id_;
    unsigned workers_;
    uv_loop_t* loop_;
    Post post_;
    std::atomic<std::size_t>& open_sessions_;
    std::size_t max_connections_ = 0;
    std::size_t pipe_limit_ = 0;
    bool access_log_ = true;
    std::unique_ptr<char[]> scratch_;
    std::vector<std::unique_ptr<WriteBlock>> spare_blocks_;
    WorkerTraffic& traffic_;
    std::vector<Pipe> spare_pipes_;
    std::size_t pipes_in_use_ = 0;
    bool splice_disabled_ = false;
};

}  // namespace fulcrum
