#pragma once
// Backend selection. A strategy object belongs to one worker and one service, so its own
// state needs no lock; what it reads of the backends (health, active counts) is atomic and
// read at pick time, so it needs no notice of health changes or sessions ending. A reload
// builds a new pool and with it new strategy objects.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/backend.hpp"

namespace fulcrum {

class Strategy {
public:
    virtual ~Strategy() = default;
    // An eligible backend not in `tried`, or nullptr when none is left. `client` is the
    // peer address of the connection (for strategies that hash it); it may be nullptr.
    virtual Backend* pick(const sockaddr* client, std::span<Backend* const> tried) = 0;
};

// `seed` feeds the strategies that draw random numbers; without it, each object seeds
// itself from std::random_device so that workers do not draw in lockstep.
std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool,
                                        std::uint64_t seed);
std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool);

// Whether `backend` may take the connection: eligible and not already tried for it.
bool is_candidate(const Backend& backend, std::span<Backend* const> tried);

// Calls visit(index, backend) for every candidate of `pool`, in pool order from `first`
// round to `first - 1`.
template <typename Visit>
void for_each_candidate(const Pool& pool, std::span<Backend* const> tried, Visit&& visit,
                        std::size_t first = 0) {
    const std::size_t count = pool.backends.size();
    for (std::size_t n = 0; n < count; ++n) {
        const std::size_t i = (first + n) % count;
        Backend& backend = *pool.backends[i];
        if (is_candidate(backend, tried)) visit(i, backend);
    }
}

// Smooth weighted round-robin (as in nginx): weights 5,1,1 give a a b a c a a, spreading
// the heavy backend's turns instead of bunching them.
class RoundRobin final : public Strategy {
public:
    explicit RoundRobin(std::shared_ptr<const Pool> pool);
    Backend* pick(const sockaddr* client, std::span<Backend* const> tried) override;

private:
    std::shared_ptr<const Pool> pool_;
    std::vector<long> current_;  // per backend, parallel to pool_->backends
};

// The backend with the fewest active sessions (all workers) relative to its weight. Ties
// go to the first tied backend after the previous pick, so idle backends take turns.
class LeastConnections final : public Strategy {
public:
    explicit LeastConnections(std::shared_ptr<const Pool> pool);
    Backend* pick(const sockaddr* client, std::span<Backend* const> tried) override;

private:
    std::shared_ptr<const Pool> pool_;
    std::size_t next_start_ = 0;  // where the search for the least loaded begins
};

// Power of two choices: two distinct candidates drawn at random, the less loaded relative
// to weight wins. Nearly as even as least-connections, but a burst of new connections
// across several workers does not all pile onto the one backend that looks emptiest.
class RandomTwo final : public Strategy {
public:
    RandomTwo(std::shared_ptr<const Pool> pool, std::uint64_t seed);
    Backend* pick(const sockaddr* client, std::span<Backend* const> tried) override;

private:
    std::shared_ptr<const Pool> pool_;
    std::mt19937_64 random_;
    std::vector<Backend*> candidates_;  // reused by every pick: no allocation per connection
};

}  // namespace fulcrum
