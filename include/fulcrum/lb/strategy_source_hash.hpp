#pragma once
// Consistent source hashing: a client IP address keeps reaching the same backend, every
// worker and every fulcrum process with the same backends agrees on which, and removing
// one of N backends moves only about 1/N of the clients.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "fulcrum/lb/backend.hpp"
#include "fulcrum/lb/strategy.hpp"

namespace fulcrum {

// A Maglev lookup table (Eisenbud et al., NSDI 2016): every slot names a backend; each
// backend claims slots along its own permutation of the table, derived from a fixed hash
// of its name, in turns proportional to its weight. The table depends only on the names
// and configured weights (not on their order or on the process, nor on slow start, which
// would re-map clients at every step), so independent builds agree, and removing a
// backend refills mostly just the slots it held.
class MaglevTable {
public:
    // Prime, as the permutations require; large against any sane backend count, so that
    // each backend's share is within a fraction of a percent of its weight's share.
    static constexpr std::size_t size = 65537;

    explicit MaglevTable(const Pool& pool);

    // The pool index of the backend in `slot` (< size). The table of an empty pool has
    // no slots; don't look it up.
    std::uint32_t operator[](std::size_t slot) const { return slots_[slot]; }
    bool empty() const { return slots_.empty(); }

private:
    std::vector<std::uint32_t> slots_;
};

// The fixed hash of a client's IP address, port left out so that every connection of a
// client hashes alike. An IPv4-mapped IPv6 address hashes as the IPv4 address it
// carries; nullptr or another family hashes as an empty address.
std::uint64_t hash_client_address(const sockaddr* client);

// Looks the client up in a Maglev table. When that backend is ineligible or already tried,
// the following slots are taken in order: deterministic, so every worker sends the
// displaced clients to the same place, and clients of healthy backends never move.
class SourceHash final : public Strategy {
public:
    explicit SourceHash(std::shared_ptr<const Pool> pool);

private:
    const PoolMember* choose(const sockaddr* client, const Scope& scope) override;

    std::shared_ptr<const Pool> pool_;
    MaglevTable table_;
};

}  // namespace fulcrum
