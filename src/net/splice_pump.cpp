#include "fulcrum/net/splice_pump.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <utility>

namespace fulcrum {

namespace {

// One splice asks for up to this much: the pipe's capacity (64 KiB by default) bounds
// what it moves, and so the bytes a stalled direction parks.
constexpr std::size_t splice_chunk = 1024 * 1024;
// Splices in (and out) per wakeup before yielding to the loop's other sessions.
constexpr int splice_rounds = 16;
// A wakeup that moved less than this before the source ran dry was not bulk: the
// direction goes back to copying (and frees its Ports) until the next full read.
constexpr std::size_t splice_keep_bytes = 16 * 1024;

}  // namespace

WorkerContext& SplicePump::worker() const {
    return *static_cast<WorkerContext*>(events_.splice_socket(0)->loop->data);
}

bool SplicePump::start(unsigned direction) {
    if (!worker().splice_enabled() || closed_) return false;
    Flow& flow = flows_[direction];
    const std::optional<Pipe> pipe = worker().take_pipe();
    if (!pipe) return false;
    flow.pipe = *pipe;
    flow.active = true;
    if (!update_ports()) {
        // No descriptor for a Port: nothing was read into the pipe, copying goes on.
        flow.active = false;
        release_pipe(flow);
        update_ports();  // closes what was opened; polls nothing, so it cannot fail
        return false;
    }
    uv_read_stop(reinterpret_cast<uv_stream_t*>(events_.splice_socket(direction)));
    worker().traffic().transfers.add();
    pump(direction);
    return true;
}

void SplicePump::pump(unsigned direction) {
    Flow& flow = flows_[direction];
    const int source_fd = ports_[direction]->fd;
    const int sink_fd = ports_[1 - direction]->fd;
    std::size_t moved = 0;
    for (int round = 0;; ++round) {
        // First what the pipe holds: the sink takes bytes in order.
        bool delivered = false;
        while (flow.in_pipe > 0) {
            ssize_t n = ::splice(flow.pipe.read, nullptr, sink_fd, nullptr, flow.in_pipe,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                flow.in_pipe -= static_cast<std::uint32_t>(n);
                delivered = true;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (delivered) events_.splice_delivered();
            if (n < 0 && errno == EAGAIN) {
                // The sink is full: keep the bytes, poll it, leave the source unpolled.
                flow.waiting_sink = true;
                if (!update_ports()) events_.splice_failed(direction, true);
                return;
            }
            events_.splice_failed(direction, true);  // a reset (EPIPE, ECONNRESET) or like one
            return;
        }
        if (delivered || flow.waiting_sink) {
            flow.waiting_sink = false;
            events_.splice_delivered();
        }
        // The pipe is empty: a good point to let the loop's other sessions have a turn.
        if (round == splice_rounds) break;
        if (!flow.has_pipe()) {
            const std::optional<Pipe> pipe = worker().take_pipe();
            if (!pipe) {
                leave(direction, false);  // every pipe is busy: copy until the next full read
                return;
            }
            flow.pipe = *pipe;
        }
        ssize_t n = ::splice(source_fd, nullptr, flow.pipe.write, nullptr, splice_chunk,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            worker().traffic().bytes.add(static_cast<std::uint64_t>(n));
            flow.in_pipe = static_cast<std::uint32_t>(n);
            moved += static_cast<std::size_t>(n);
            events_.spliced(direction, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        // The pipe is empty from here on: give it back before anything else.
        const int error = n < 0 ? errno : 0;
        release_pipe(flow);
        if (n == 0) {
            // FIN from the source, every byte before it passed on.
            leave(direction, true);
            return;
        }
        if (error == EAGAIN) {
            if (moved < splice_keep_bytes) {
                leave(direction, false);
            } else if (!update_ports()) {
                events_.splice_failed(direction, false);
            }
            return;
        }
        if (error == EINVAL || error == ENOSYS) {
            // This kernel cannot splice from this socket; nothing was taken from it.
            worker().disable_splice(error);
            leave(direction, false);
            return;
        }
        events_.splice_failed(direction, false);  // a reset, or an error like one
        return;
    }
    // The source stays polled (level-triggered): the next wakeup comes at once.
    release_pipe(flow);
    if (!update_ports()) events_.splice_failed(direction, false);
}

void SplicePump::leave(unsigned direction, bool finished) {
    Flow& flow = flows_[direction];
    flow.active = false;
    flow.waiting_sink = false;
    if (!update_ports()) {
        events_.splice_failed(direction, false);
        return;
    }
    if (finished) {
        events_.splice_source_finished(direction);
    } else {
        events_.splice_stopped(direction);
    }
}

void SplicePump::release_pipe(Flow& flow) {
    if (!flow.has_pipe()) return;
    if (flow.in_pipe == 0) {
        worker().give_pipe(flow.pipe);
    } else {
        worker().drop_pipe(flow.pipe);  // its bytes die with the session
    }
    flow.pipe = Pipe{};
    flow.in_pipe = 0;
}

bool SplicePump::update_ports() {
    auto wants = [](const Flow& flow, bool as_source) {
        if (!flow.active) return 0;
        if (as_source) return flow.waiting_sink ? 0 : static_cast<int>(UV_READABLE);
        return flow.waiting_sink ? static_cast<int>(UV_WRITABLE) : 0;
    };
    const Flow& up = flows_[upstream_direction];
    const Flow& down = flows_[downstream_direction];
    // A spliced direction needs both its sides' Ports; both directions share the two.
    const bool splicing = up.active || down.active;
    return update_port(0, wants(up, true) | wants(down, false), splicing) &&
           update_port(1, wants(down, true) | wants(up, false), splicing);
}

bool SplicePump::update_port(unsigned side, int events, bool needed) {
    Port*& port = ports_[side];
    if (!needed) {
        if (port != nullptr) close_port(side);
        return true;
    }
    if (port == nullptr) {
        uv_os_fd_t fd;
        uv_tcp_t* socket = events_.splice_socket(side);
        if (uv_fileno(reinterpret_cast<uv_handle_t*>(socket), &fd) < 0) return false;
        const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (copy < 0) return false;
        auto* fresh = new Port;
        fresh->fd = copy;
        fresh->pump = this;
        if (uv_poll_init_socket(socket->loop, &fresh->poll, copy) < 0) {
            ::close(copy);
            delete fresh;
            return false;
        }
        events_.splice_handle_opened();
        port = fresh;
    }
    if (events == port->events) return true;
    port->events = events;
    if (events == 0) return uv_poll_stop(&port->poll) == 0;
    return uv_poll_start(&port->poll, events, on_port) == 0;
}

void SplicePump::close_port(unsigned side) {
    // uv_close stops the poll and drops its epoll registration at once, so the
    // descriptor can be closed right after; the Port is freed in on_port_closed.
    Port* port = std::exchange(ports_[side], nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&port->poll), on_port_closed);
    ::close(port->fd);
}

void SplicePump::on_port_closed(uv_handle_t* handle) {
    auto* port = reinterpret_cast<Port*>(handle);
    SpliceEvents& events = port->pump->events_;
    delete port;
    events.splice_handle_closed();  // may free the session, and this pump with it
}

void SplicePump::close() {
    closed_ = true;
    for (Flow& flow : flows_) {
        flow.active = false;
        release_pipe(flow);
    }
    for (unsigned side : {0u, 1u}) {
        if (ports_[side] != nullptr) close_port(side);
    }
}

void SplicePump::on_port(uv_poll_t* poll, int status, int events) {
    const Port* port = reinterpret_cast<Port*>(poll);
    SplicePump& self = *port->pump;
    if (self.closed_) return;
    const unsigned side = port == self.ports_[0] ? 0 : 1;
    // The side is the source of direction `side` and the sink of the other one.
    const unsigned reading = side;
    const unsigned writing = 1 - side;
    if (status < 0) {
        // libuv reports a socket error (POLLERR, such as a reset) this way, with the poll
        // stopped: the side failed, as a read or write on it would have said.
        self.events_.splice_failed(reading, false);
        return;
    }
    Flow& sink_flow = self.flows_[writing];
    if ((events & UV_WRITABLE) != 0 && sink_flow.active && sink_flow.waiting_sink) {
        self.pump(writing);
        if (self.closed_) return;
    }
    Flow& source_flow = self.flows_[reading];
    if ((events & UV_READABLE) != 0 && source_flow.active && !source_flow.waiting_sink) {
        self.pump(reading);
    }
}

}  // namespace fulcrum
