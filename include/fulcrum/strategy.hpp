#pragma once
// Backend selection. A strategy object belongs to one worker and one service, so its own
// state needs no lock; what it reads of the backends (health, active counts) is atomic.

#include <sys/socket.h>

#include <memory>
#include <span>
#include <vector>

#include "fulcrum/backend.hpp"
#include "fulcrum/config.hpp"

namespace fulcrum {

class Strategy {
public:
    virtual ~Strategy() = default;
    // An eligible backend not in `tried`, or nullptr when none is left. `client` is the
    // peer address of the connection (for strategies that hash it).
    virtual Backend* pick(const sockaddr* client, std::span<Backend* const> tried) = 0;
};

std::unique_ptr<Strategy> make_strategy(StrategyKind kind, std::shared_ptr<const Pool> pool);

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

}  // namespace fulcrum
