#include "fulcrum/lb/strategy_source_hash.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <limits>
#include <string_view>

namespace fulcrum {

namespace {

// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
std::uint64_t mix(std::uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

// FNV-1a, then mixed to spread its weak low bits. Fixed (no per-process seed, unlike
// std::hash, which is free to vary), so every fulcrum process computes the same values.
std::uint64_t stable_hash(std::span<const std::byte> bytes) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::byte b : bytes) {
        h ^= static_cast<std::uint64_t>(b);
        h *= 0x100000001b3ULL;
    }
    return mix(h);
}

std::uint64_t stable_hash(std::string_view text) {
    return stable_hash(std::as_bytes(std::span(text.data(), text.size())));
}

// One backend's walk through the table while the table is being filled.
struct Filler {
    std::uint32_t backend;  // pool index
    std::uint64_t weight;
    std::uint64_t offset;     // the first slot of its permutation
    std::uint64_t skip;       // the step between slots, in [1, size): with a prime size the
                              // permutation visits every slot
    std::uint64_t next = 0;   // position in its permutation
    std::uint64_t taken = 0;  // slots claimed so far

    std::size_t next_slot() { return (offset + next++ * skip) % MaglevTable::size; }
};

bool has_candidate(const Pool& pool, const Strategy::Scope& scope) {
    bool found = false;
    for_each_candidate(pool, scope, [&](std::size_t, const PoolMember&) { found = true; });
    return found;
}

}  // namespace

MaglevTable::MaglevTable(const Pool& pool) {
    const auto& backends = pool.members;
    if (backends.empty()) return;

    std::vector<Filler> fillers;
    std::uint64_t max_weight = 0;
    for (std::uint32_t i = 0; i < backends.size(); ++i) {
        const BackendConfig& config = backends[i].config;
        const std::uint64_t name_hash = stable_hash(config.name);
        const auto weight = static_cast<std::uint64_t>(std::max(1, config.weight));
        // Two hashes of the name, decorrelated by the mixer.
        fillers.push_back({.backend = i,
                           .weight = weight,
                           .offset = mix(name_hash) % size,
                           .skip = mix(name_hash + 0x9e3779b97f4a7c15ULL) % (size - 1) + 1});
        max_weight = std::max(max_weight, weight);
    }
    // Filled in name order, so the list's order in the configuration does not matter.
    std::ranges::sort(fillers, {}, [&](const Filler& f) -> const std::string& {
        return backends[f.backend].config.name;
    });

    constexpr auto unclaimed = std::numeric_limits<std::uint32_t>::max();
    slots_.assign(size, unclaimed);
    std::size_t claimed = 0;
    // In round r a backend claims a slot if r * weight has reached taken * max_weight: the
    // heaviest every round, one of a third its weight every third round. Round 1 gives
    // every backend a slot, so the fallback walk can reach each one.
    for (std::uint64_t round = 1; claimed < size; ++round) {
        for (Filler& filler : fillers) {
            if (claimed == size) break;
            if (round * filler.weight < filler.taken * max_weight) continue;
            std::size_t slot = filler.next_slot();
            while (slots_[slot] != unclaimed) slot = filler.next_slot();
            slots_[slot] = filler.backend;
            ++filler.taken;
            ++claimed;
        }
    }
}

std::uint64_t hash_client_address(const sockaddr* client) {
    std::span<const std::byte> address;
    if (client != nullptr && client->sa_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(client);
        address = std::as_bytes(std::span(&v4->sin_addr, 1));
    } else if (client != nullptr && client->sa_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(client);
        address = std::as_bytes(std::span(&v6->sin6_addr, 1));
        // ::ffff:a.b.c.d is the IPv4 client a.b.c.d seen through a dual-stack socket.
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) address = address.last(4);
    }
    return stable_hash(address);
}

SourceHash::SourceHash(std::shared_ptr<const Pool> pool) : pool_(std::move(pool)), table_(*pool_) {}

const PoolMember* SourceHash::choose(const sockaddr* client, const Scope& scope) {
    if (table_.empty()) return nullptr;
    const std::size_t slot = hash_client_address(client) % MaglevTable::size;
    for (std::size_t step = 0; step < MaglevTable::size; ++step) {
        const PoolMember& member = pool_->members[table_[(slot + step) % MaglevTable::size]];
        if (is_candidate(member, scope)) return &member;
        // Spare the walk through the whole table when it cannot end well.
        if (step == 0 && !has_candidate(*pool_, scope)) return nullptr;
    }
    return nullptr;  // health changed during the walk
}

}  // namespace fulcrum
