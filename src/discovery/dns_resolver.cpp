#include "fulcrum/discovery/dns_resolver.hpp"

#include <arpa/nameser.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace fulcrum {

// The uv_poll of one c-ares socket; frees itself when closed.
struct DnsResolver::Poll {
    uv_poll_t handle{};
    DnsResolver* owner = nullptr;
    ares_socket_t fd = ARES_SOCKET_BAD;
};

namespace {

ResolutionResult result_of(int status) {
    switch (status) {
        case ARES_SUCCESS:
            return ResolutionResult::ok;
        case ARES_ENODATA:
            return ResolutionResult::empty;
        case ARES_ENOTFOUND:
        case ARES_ENONAME:
            return ResolutionResult::nxdomain;
        case ARES_ESERVFAIL:
            return ResolutionResult::servfail;
        case ARES_ETIMEOUT:
            return ResolutionResult::timeout;
        default:
            return ResolutionResult::error;
    }
}

std::uint32_t read_u32(const unsigned char* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           p[3];
}

std::uint16_t read_u16(const unsigned char* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// Moves `p` past the (possibly compressed) name it points at; false when malformed.
bool skip_name(const unsigned char*& p, const unsigned char* abuf, int alen) {
    char* name = nullptr;
    long length = 0;
    if (ares_expand_name(p, abuf, alen, &name, &length) != ARES_SUCCESS) return false;
    ares_free_string(name);
    p += length;
    return true;
}

// The lowest TTL of the SRV records in an answer: ares_parse_srv_reply drops TTLs (c-ares
// 1.18 has no TTL-aware SRV parser), so the answer section is walked here.
std::optional<std::uint32_t> lowest_srv_ttl(const unsigned char* abuf, int alen) {
    constexpr int header_size = 12;
    constexpr int fixed_rr_size = 10;  // type, class, TTL, data length
    if (alen < header_size) return std::nullopt;
    const unsigned char* end = abuf + alen;
    const unsigned char* p = abuf + header_size;
    for (unsigned question = read_u16(abuf + 4); question > 0; --question) {
        if (!skip_name(p, abuf, alen) || end - p < 4) return std::nullopt;
        p += 4;  // type, class
    }
    std::optional<std::uint32_t> lowest;
    for (unsigned answer = read_u16(abuf + 6); answer > 0; --answer) {
        if (!skip_name(p, abuf, alen) || end - p < fixed_rr_size) return std::nullopt;
        const std::uint16_t type = read_u16(p);
        const std::uint32_t ttl = read_u32(p + 4);
        const std::uint16_t length = read_u16(p + 8);
        p += fixed_rr_size;
        if (end - p < length) return std::nullopt;
        p += length;
        if (type == ns_t_srv) lowest = std::min(ttl, lowest.value_or(ttl));
    }
    return lowest;
}

// "ip:port" of each server, for ares_set_servers_ports_csv.
std::string servers_csv(const std::vector<Address>& servers) {
    std::vector<std::string> entries;
    for (const Address& server : servers) entries.push_back(server.numeric());
    return fmt::format("{}", fmt::join(entries, ","));
}

void log_uv_error(const char* what, int rc) {
    spdlog::error("dns: {}: {}", what, uv_strerror(rc));
}

}  // namespace

DnsResolver::Ptr DnsResolver::open(uv_loop_t* loop, const std::vector<Address>& servers,
                                   Duration timeout) {
    static std::once_flag library;
    std::call_once(library, [] {
        if (const int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS) {
            throw std::runtime_error(fmt::format("c-ares: {}", ares_strerror(rc)));
        }
    });
    Ptr resolver(new DnsResolver(loop));
    if (const int rc = uv_timer_init(loop, &resolver->timer_); rc < 0) {
        delete resolver.release();  // nothing to close yet
        throw std::runtime_error(fmt::format("uv_timer_init: {}", uv_strerror(rc)));
    }
    resolver->timer_.data = resolver.get();

    const int server_count = servers.empty() ? 1 : static_cast<int>(servers.size());
    constexpr int tries = 2;
    ares_options options{};
    // c-ares doubles a try's timeout on the second round over the servers: 3 units per
    // server in all.
    options.timeout = std::max(1, static_cast<int>(timeout.count() / (3 * server_count)));
    options.tries = tries;
    options.ndomains = 0;  // no search list: the names configured are resolved as written
    options.domains = nullptr;
    char lookups[] = "b";  // DNS only, not /etc/hosts
    options.lookups = lookups;
    // SERVFAIL and REFUSED answers reach the callback as such: without this, c-ares 1.18
    // tries the next server and then reports "could not contact DNS servers", the same as
    // for an unreachable one. Timeouts still move on to the next server.
    options.flags = ARES_FLAG_NOCHECKRESP;
    options.sock_state_cb = on_socket_state;
    options.sock_state_cb_data = resolver.get();
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS |
                     ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
    if (const int rc = ares_init_options(&resolver->channel_, &options, mask); rc != ARES_SUCCESS) {
        resolver->channel_ = nullptr;
        throw std::runtime_error(fmt::format("c-ares: {}", ares_strerror(rc)));
    }
    if (!servers.empty()) {
        const std::string csv = servers_csv(servers);
        if (const int rc = ares_set_servers_ports_csv(resolver->channel_, csv.c_str());
            rc != ARES_SUCCESS) {
            throw std::runtime_error(
                fmt::format("c-ares: resolvers {}: {}", csv, ares_strerror(rc)));
        }
    }
    return resolver;
}

void DnsResolver::close() {
    // Ends every query (ARES_EDESTRUCTION, which the callbacks ignore) and closes the
    // sockets, each through on_socket_state first.
    if (channel_ != nullptr) ares_destroy(channel_);
    channel_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* handle) { delete static_cast<DnsResolver*>(handle->data); });
}

void DnsResolver::resolve_addresses(const std::string& name, AddressCallback callback) {
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
    auto* pending = new AddressCallback(std::move(callback));
    ares_getaddrinfo(
        channel_, name.c_str(), nullptr, &hints,
        [](void* arg, int status, int, ares_addrinfo* info) {
            std::unique_ptr<AddressCallback> callback(static_cast<AddressCallback*>(arg));
            std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(info,
                                                                               ares_freeaddrinfo);
            if (status == ARES_EDESTRUCTION) return;
            AddressAnswer answer;
            std::optional<int> ttl;
            for (const ares_addrinfo_node* node = info != nullptr ? info->nodes : nullptr;
                 node != nullptr; node = node->ai_next) {
                answer.ips.push_back(format_ip(node->ai_addr));
                ttl = std::min(node->ai_ttl, ttl.value_or(node->ai_ttl));
            }
            answer.ttl = static_cast<std::uint32_t>(std::max(0, ttl.value_or(0)));
            ResolutionResult result = result_of(status);
            if (result == ResolutionResult::ok && answer.ips.empty()) {
                result = ResolutionResult::empty;
            }
            (*callback)(result, std::move(answer));
        },
        pending);
    schedule_timeout();
}

void DnsResolver::resolve_srv(const std::string& name, SrvCallback callback) {
    auto* pending = new SrvCallback(std::move(callback));
    ares_query(
        channel_, name.c_str(), ns_c_in, ns_t_srv,
        [](void* arg, int status, int, unsigned char* abuf, int alen) {
            std::unique_ptr<SrvCallback> callback(static_cast<SrvCallback*>(arg));
            if (status == ARES_EDESTRUCTION) return;
            SrvAnswer answer;
            if (status != ARES_SUCCESS) {
                (*callback)(result_of(status), std::move(answer));
                return;
            }
            ares_srv_reply* replies = nullptr;
            status = ares_parse_srv_reply(abuf, alen, &replies);
            std::unique_ptr<ares_srv_reply, decltype(&ares_free_data)> owned(replies,
                                                                             ares_free_data);
            const std::optional<std::uint32_t> ttl = lowest_srv_ttl(abuf, alen);
            if (status != ARES_SUCCESS || !ttl) {
                (*callback)(
                    status == ARES_ENODATA ? ResolutionResult::empty : ResolutionResult::error,
                    std::move(answer));
                return;
            }
            for (const ares_srv_reply* reply = replies; reply != nullptr; reply = reply->next) {
                answer.records.push_back({
                    .target = reply->host,
                    .port = reply->port,
                    .priority = reply->priority,
                    .weight = reply->weight,
                    .ip = {},
                });
            }
            answer.ttl = *ttl;
            (*callback)(ResolutionResult::ok, std::move(answer));
        },
        pending);
    schedule_timeout();
}

void DnsResolver::on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<DnsResolver*>(data);
    const auto found = self->polls_.find(fd);
    if (readable == 0 && writable == 0) {
        // c-ares closes the socket next: stop watching it first.
        if (found == self->polls_.end()) return;
        uv_close(reinterpret_cast<uv_handle_t*>(&found->second->handle),
                 [](uv_handle_t* handle) { delete static_cast<Poll*>(handle->data); });
        self->polls_.erase(found);
        return;
    }
    Poll* poll = found != self->polls_.end() ? found->second : nullptr;
    if (poll == nullptr) {
        poll = new Poll{.handle = {}, .owner = self, .fd = fd};
        if (const int rc = uv_poll_init_socket(self->loop_, &poll->handle, fd); rc < 0) {
            // The query on it runs into its timeout, a resolver error.
            log_uv_error("uv_poll_init_socket", rc);
            delete poll;
            return;
        }
        poll->handle.data = poll;
        self->polls_.emplace(fd, poll);
    }
    const int events = (readable != 0 ? UV_READABLE : 0) | (writable != 0 ? UV_WRITABLE : 0);
    if (const int rc = uv_poll_start(&poll->handle, events, on_poll); rc < 0) {
        log_uv_error("uv_poll_start", rc);
    }
}

void DnsResolver::on_poll(uv_poll_t* handle, int status, int events) {
    auto* poll = static_cast<Poll*>(handle->data);
    DnsResolver* self = poll->owner;
    const ares_socket_t fd = poll->fd;
    if (status < 0) {
        // Let c-ares read and write the socket: it sees the error and ends the query or
        // moves to the next server.
        spdlog::debug("dns: poll on socket {}: {}", fd, uv_strerror(status));
        events = UV_READABLE | UV_WRITABLE;
    }
    ares_process_fd(self->channel_, (events & UV_READABLE) != 0 ? fd : ARES_SOCKET_BAD,
                    (events & UV_WRITABLE) != 0 ? fd : ARES_SOCKET_BAD);
    self->schedule_timeout();
}

void DnsResolver::on_timeout(uv_timer_t* timer) {
    auto* self = static_cast<DnsResolver*>(timer->data);
    ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    self->schedule_timeout();
}

void DnsResolver::schedule_timeout() {
    if (channel_ == nullptr) return;
    timeval tv{};
    if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
        uv_timer_stop(&timer_);
        return;
    }
    // Rounded up: a timer that fires early finds nothing due and is armed again.
    const auto ms = static_cast<std::uint64_t>(tv.tv_sec) * 1000 +
                    static_cast<std::uint64_t>((tv.tv_usec + 999) / 1000);
    if (const int rc = uv_timer_start(&timer_, on_timeout, ms, 0); rc < 0) {
        log_uv_error("uv_timer_start", rc);
    }
}

}  // namespace fulcrum
