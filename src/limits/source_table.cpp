#include "fulcrum/limits/source_table.hpp"

#include <netinet/in.h>

#include <cstring>

#include "fulcrum/util/splitmix64.hpp"

namespace fulcrum {

SourceKey source_key(const sockaddr* client) {
    SourceKey key;
    if (client == nullptr) return key;
    if (client->sa_family == AF_INET) {
        key.bits = ntohl(reinterpret_cast<const sockaddr_in*>(client)->sin_addr.s_addr);
    } else if (client->sa_family == AF_INET6) {
        const in6_addr& address = reinterpret_cast<const sockaddr_in6*>(client)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&address)) {
            std::uint32_t v4 = 0;
            std::memcpy(&v4, address.s6_addr + 12, sizeof v4);
            key.bits = ntohl(v4);
        } else {
            std::memcpy(&key.bits, address.s6_addr, sizeof key.bits);  // the /64
            key.v6 = true;
        }
    }
    return key;
}

std::size_t SourceTable::KeyHash::operator()(const SourceKey& key) const {
    return static_cast<std::size_t>(splitmix64(key.bits ^ (key.v6 ? 0x5bd1e995ULL : 0)));
}

SourceTable::Shard& SourceTable::shard_of(const SourceKey& key) {
    // The top bits of the mix: the map's buckets use the low ones.
    return shards_[KeyHash{}(key) >> 60 & (shard_count - 1)];
}

bool SourceTable::admit(const SourceKey& key, std::int64_t now_ns, std::size_t max_open,
                        const Gcra* rate) {
    Shard& shard = shard_of(key);
    std::lock_guard lock(shard.mutex);
    auto [it, inserted] = shard.entries.try_emplace(key);
    Entry& entry = it->second;
    if (entry.idle) {
        shard.idle.erase(entry.idle_at);
        entry.idle = false;
    }
    const bool admitted = (max_open == 0 || entry.open < max_open) &&
                          (rate == nullptr || rate->admit(entry.tat, now_ns));
    if (admitted) {
        ++entry.open;
    } else if (entry.open == 0) {
        settle(shard, key, entry, now_ns);
    }
    return admitted;
}

void SourceTable::release(const SourceKey& key, std::int64_t now_ns) {
    Shard& shard = shard_of(key);
    std::lock_guard lock(shard.mutex);
    const auto it = shard.entries.find(key);
    if (it == shard.entries.end() || it->second.open == 0) return;
    if (--it->second.open == 0) settle(shard, key, it->second, now_ns);
}

void SourceTable::settle(Shard& shard, const SourceKey& key, Entry& entry, std::int64_t now_ns) {
    if (entry.tat <= now_ns) {
        shard.entries.erase(key);  // a fresh entry would say the same
        return;
    }
    entry.idle = true;
    entry.idle_at = shard.idle.insert(shard.idle.end(), key);
    while (shard.idle.size() > idle_capacity_) {
        // The least recently used source forgets its rate: at worst a fresh burst for it.
        shard.entries.erase(shard.idle.front());
        shard.idle.pop_front();
    }
}

std::size_t SourceTable::size() {
    std::size_t total = 0;
    for (Shard& shard : shards_) {
        std::lock_guard lock(shard.mutex);
        total += shard.entries.size();
    }
    return total;
}

}  // namespace fulcrum
