#pragma once
// The connections of one service waiting for a backend slot, when every routable backend
// is at its max_connections: one FIFO across all workers, kept across reloads. A session
// that ends hands its slot straight to the oldest waiter (the backend's active count does
// not move), so the limit stays exact and a newcomer cannot jump the queue.
//
// Only the overload path takes the lock: a service nobody waits on costs a session one
// atomic load when it ends.

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "fulcrum/lb/backend.hpp"
#include "fulcrum/lb/balancer.hpp"

namespace fulcrum {

// One waiting connection.
struct WaitTicket {
    virtual ~WaitTicket() = default;
    // Runs on whichever thread frees a slot, with the queue's lock held: it must only pass
    // the grant on to the waiter's own thread. `self`: this ticket, to keep it alive on the
    // way. `slot`: a backend slot now the waiter's; nullptr: no slot, but one may have come
    // free (pick again).
    virtual void grant(const std::shared_ptr<WaitTicket>& self, std::shared_ptr<Backend> slot) = 0;
};

class WaitQueue {
public:
    // Waiting now (the service's queue length).
    std::size_t length() const { return waiting_.load(); }

    enum class Admission { picked, queued, full };
    // A pick said "wait": queues `ticket` (at the front for a waiter that lost its turn
    // to a race), unless `limit` already wait. `repick` runs under the lock after the
    // ticket is counted: a slot freed before is found by it, one freed after sees the
    // count and wakes the queue (see release), so no wakeup is lost. Its backend pick is
    // returned in `pick` with Admission::picked.
    Admission enqueue(const std::shared_ptr<WaitTicket>& ticket, std::size_t limit, bool front,
                      const std::function<Pick()>& repick, Pick& pick);
    // Takes `ticket` out; false when it was no longer queued (its grant is on its way).
    bool cancel(const std::shared_ptr<WaitTicket>& ticket);

    // A session is done with its slot of `backend`: the oldest waiter gets it if the
    // backend still takes connections; otherwise it is freed, and the oldest waiter is
    // told to pick again.
    void release(const std::shared_ptr<Backend>& backend);

private:
    std::mutex mutex_;
    std::deque<std::shared_ptr<WaitTicket>> tickets_;
    std::atomic<std::size_t> waiting_{0};  // tickets_.size(), plus a repick in progress
};

}  // namespace fulcrum
