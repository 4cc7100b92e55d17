#include "fulcrum/lb/wait_queue.hpp"

#include <algorithm>

namespace fulcrum {

WaitQueue::Admission WaitQueue::enqueue(const std::shared_ptr<WaitTicket>& ticket,
                                        std::size_t limit, bool front,
                                        const std::function<Pick()>& repick, Pick& pick) {
    std::lock_guard lock(mutex_);
    if (!front && tickets_.size() >= limit) return Admission::full;
    // Counted before the repick reads the active counts, release() frees before it reads
    // this count: one of the two sees the other (both sequentially consistent).
    waiting_.fetch_add(1);
    pick = repick();
    if (pick.kind == Pick::Kind::backend) {
        waiting_.fetch_sub(1);
        return Admission::picked;
    }
    if (front) {
        tickets_.push_front(ticket);
    } else {
        tickets_.push_back(ticket);
    }
    return Admission::queued;
}

bool WaitQueue::cancel(const std::shared_ptr<WaitTicket>& ticket) {
    std::lock_guard lock(mutex_);
    const auto it = std::find(tickets_.begin(), tickets_.end(), ticket);
    if (it == tickets_.end()) return false;
    tickets_.erase(it);
    waiting_.fetch_sub(1);
    return true;
}

void WaitQueue::release(const std::shared_ptr<Backend>& backend) {
    if (waiting_.load() > 0 && backend->eligible()) {
        std::lock_guard lock(mutex_);
        if (!tickets_.empty()) {
            const std::shared_ptr<WaitTicket> oldest = std::move(tickets_.front());
            tickets_.pop_front();
            waiting_.fetch_sub(1);
            oldest->grant(oldest, backend);  // the slot changes hands: active stays as it is
            return;
        }
    }
    backend->active.fetch_sub(1);
    if (waiting_.load() == 0) return;
    std::lock_guard lock(mutex_);
    if (tickets_.empty()) return;
    const std::shared_ptr<WaitTicket> oldest = std::move(tickets_.front());
    tickets_.pop_front();
    waiting_.fetch_sub(1);
    oldest->grant(oldest, nullptr);
}

}  // namespace fulcrum
