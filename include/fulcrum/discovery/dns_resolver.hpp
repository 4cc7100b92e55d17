#pragma once
// One c-ares channel driven by a libuv loop: c-ares tells which of its sockets (UDP, and
// TCP when an answer was truncated) it waits on, each is watched with a uv_poll, and a
// uv_timer runs its timeouts. Queries never block: callbacks run on the loop's thread.

#include <uv.h>

#include <ares.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fulcrum/config/address.hpp"
#include "fulcrum/config/duration.hpp"
#include "fulcrum/discovery/srv_mapping.hpp"
#include "fulcrum/stats/discovery_stats.hpp"

namespace fulcrum {

// The addresses a name resolved to (A and AAAA), numeric, with their lowest TTL.
struct AddressAnswer {
    std::vector<std::string> ips;
    std::uint32_t ttl = 0;  // seconds
};

// The SRV records of a name, targets not yet resolved (SrvTarget::ip empty).
struct SrvAnswer {
    std::vector<SrvTarget> records;
    std::uint32_t ttl = 0;  // seconds, the lowest of the records
};

class DnsResolver {
public:
    // Frees a resolver through close(): its handles close on the loop first.
    struct Closer {
        void operator()(DnsResolver* resolver) const { resolver->close(); }
    };
    using Ptr = std::unique_ptr<DnsResolver, Closer>;

    // `servers` empty: /etc/resolv.conf's nameservers. A query gives up after `timeout`,
    // its one retry included. Throws std::runtime_error when c-ares cannot start.
    static Ptr open(uv_loop_t* loop, const std::vector<Address>& servers, Duration timeout);

    using AddressCallback = std::function<void(ResolutionResult, AddressAnswer)>;
    using SrvCallback = std::function<void(ResolutionResult, SrvAnswer)>;
    // A and AAAA of `name`. The callback runs on the loop, once, and never after the
    // resolver is closed; for a name that needs no query (a numeric address) inside this
    // call.
    void resolve_addresses(const std::string& name, AddressCallback callback);
    // SRV of `name`, likewise.
    void resolve_srv(const std::string& name, SrvCallback callback);

private:
    struct Poll;
    explicit DnsResolver(uv_loop_t* loop) : loop_(loop) {}
    ~DnsResolver() = default;
    // Cancels the queries (their callbacks do not run), closes the handles and frees this
    // once the timer's close callback ran.
    void close();

    static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable);
    static void on_poll(uv_poll_t* handle, int status, int events);
    static void on_timeout(uv_timer_t* timer);
    // Arms the timer for c-ares's next timeout, or stops it with nothing pending.
    void schedule_timeout();

    uv_loop_t* loop_;
    ares_channel channel_ = nullptr;
    uv_timer_t timer_{};
    std::map<ares_socket_t, Poll*> polls_;
};

}  // namespace fulcrum
