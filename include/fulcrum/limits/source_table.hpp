#pragma once
// Per-client state of a service's limits: open connections and a rate TAT (see
// rate_limiter.hpp) per source, shared by every worker. A source is a client address,
// an IPv6 one by its /64 (one host's worth of addresses).
//
// Memory is bounded whatever the number of sources: a source with open connections has
// an entry (there are at most runtime.max_connections of those); a source with none keeps
// its entry only while its TAT is ahead of now (the only case the entry still knows
// something), and at most `idle_capacity` of those per shard, the least recently used
// going first. Sixteen shards, each with its own lock, keep workers from meeting on one.

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>

#include "fulcrum/limits/rate_limiter.hpp"

namespace fulcrum {

struct SourceKey {
    std::uint64_t bits = 0;  // the IPv4 address, or the /64 of an IPv6 one
    bool v6 = false;

    bool operator==(const SourceKey&) const = default;
};
// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
SourceKey source_key(const sockaddr* client);

class SourceTable {
public:
    static constexpr std::size_t shard_count = 16;
    explicit SourceTable(std::size_t idle_capacity_per_shard = 1024)
        : idle_capacity_(idle_capacity_per_shard) {}

    // Counts a new connection of `key` unless it has `max_open` open already (0: no
    // limit) or `rate` (may be null) refuses it. True: admitted; release() it later.
    bool admit(const SourceKey& key, std::int64_t now_ns, std::size_t max_open, const Gcra* rate);
    void release(const SourceKey& key, std::int64_t now_ns);

    // Entries held now, all shards (for tests and /metrics).
    std::size_t size();

private:
    struct Entry {
        std::size_t open = 0;
        std::int64_t tat = 0;
        bool idle = false;  // in the shard's idle list (open == 0, TAT ahead of now)
        std::list<SourceKey>::iterator idle_at;
    };
    struct KeyHash {
        std::size_t operator()(const SourceKey& key) const;
    };
    struct Shard {
        std::mutex mutex;
        std::unordered_map<SourceKey, Entry, KeyHash> entries;
        std::list<SourceKey> idle;  // least recently used first
    };
    Shard& shard_of(const SourceKey& key);
    // `entry` has no open connection left: keep it as idle, or drop it.
    void settle(Shard& shard, const SourceKey& key, Entry& entry, std::int64_t now_ns);

    const std::size_t idle_capacity_;
    std::array<Shard, shard_count> shards_;
};

}  // namespace fulcrum
