#pragma once
// The splice path of one session: bulk bytes move socket -> pipe -> socket with splice(),
// never entering user space. A direction moves onto it after a full copy read and back
// to copying when the source runs dry. The pump polls a second descriptor (dup) of each
// socket: libuv owns the epoll registration of the socket's own descriptor, and epoll
// keeps the two apart. A pipe is held only while it holds bytes (or a pump runs), so an
// idle direction holds none. The pump tells its session what happened through
// SpliceEvents; neither includes the other's header.

#include <uv.h>

#include <cstddef>
#include <cstdint>

#include "fulcrum/net/worker_context.hpp"

namespace fulcrum {

// Directions: 0 is client -> backend, 1 is backend -> client.
inline constexpr unsigned upstream_direction = 0;
inline constexpr unsigned downstream_direction = 1;

class SpliceEvents {
public:
    // `bytes` left the direction's source (they are in the pipe).
    virtual void spliced(unsigned direction, std::size_t bytes) = 0;
    // The sink took bytes from a pipe.
    virtual void splice_delivered() = 0;
    // The source sent FIN and every byte before it reached the sink; the direction is
    // back on the copy path.
    virtual void splice_source_finished(unsigned direction) = 0;
    // Back on the copy path with the source not yet finished: read it again.
    virtual void splice_stopped(unsigned direction) = 0;
    // The source (or, `at_sink`, the sink) failed: a reset, or an error like one.
    virtual void splice_failed(unsigned direction, bool at_sink) = 0;
    // Side 0 is the client's socket, side 1 the backend's; direction d reads side d and
    // writes the other. Their loop's `data` is the worker's WorkerContext.
    virtual uv_tcp_t* splice_socket(unsigned side) = 0;
    // A poll handle opened or finished closing: the session's close path counts them.
    virtual void splice_handle_opened() = 0;
    virtual void splice_handle_closed() = 0;

protected:
    ~SpliceEvents() = default;
};

class SplicePump {
public:
    explicit SplicePump(SpliceEvents& events) : events_(events) {}
    SplicePump(const SplicePump&) = delete;
    SplicePump& operator=(const SplicePump&) = delete;

    // Moves `direction` onto the splice path, from its source's read callback or a
    // finished write (libuv then holds no byte of the source, and reads no more once
    // stopped). False: it stays on copy, nothing changed. True: it pumps at once, and
    // events may already have ended the session.
    bool start(unsigned direction);
    // The session is closing: pipes are given back (or dropped with their bytes) and poll
    // handles closed. Nothing is reported after this.
    void close();

private:
    // A dup of one side's socket and its poll handle. Heap-allocated so that a closing
    // Port and a new one can overlap; freed in its close callback.
    struct Port {
        uv_poll_t poll{};  // first: the callbacks find the Port from the handle
        SplicePump* pump = nullptr;
        int fd = -1;
        int events = 0;  // UV_READABLE / UV_WRITABLE being polled
    };
    // Kept small: every session embeds two, spliced or not.
    struct Flow {
        Pipe pipe;                  // while it holds bytes, or a pump runs; else read = -1
        std::uint32_t in_pipe = 0;  // bytes in `pipe`, not yet taken by the sink
        bool active = false;
        bool waiting_sink = false;  // the sink is full, `in_pipe` bytes wait
        bool has_pipe() const { return pipe.read >= 0; }
    };

    static void on_port(uv_poll_t* poll, int status, int events);
    static void on_port_closed(uv_handle_t* handle);
    void pump(unsigned direction);
    // Back to copying; `finished`: the source sent FIN.
    void leave(unsigned direction, bool finished);
    void release_pipe(Flow& flow);
    // Opens, re-polls or closes the Ports the flows need now; false when a Port could not
    // be opened or polled.
    bool update_ports();
    bool update_port(unsigned side, int events, bool needed);
    void close_port(unsigned side);

    WorkerContext& worker() const;

    SpliceEvents& events_;
    Port* ports_[2] = {nullptr, nullptr};
    Flow flows_[2];
    bool closed_ = false;
};

}  // namespace fulcrum
