#include "fulcrum/discovery/etcd_discovery.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "fulcrum/discovery/etcd_client.hpp"
#include "fulcrum/discovery/etcd_mapping.hpp"

namespace fulcrum {
namespace {

using namespace std::chrono_literals;

// Reconnecting: the first retry soon (a restart of etcd, a broken connection), then
// less and less often, so that a fleet does not hammer an etcd that is down.
constexpr Duration first_backoff = 100ms;
constexpr Duration max_backoff = 5s;

// What the thread hands to the loop, in order.
struct Update {
    enum class Kind {
        listing,   // the whole prefix, read at `revision`
        events,    // puts and deletes up to `revision` (none: a progress notice)
        watching,  // the watch is established (detail: the endpoint)
        lost,      // the connection to etcd is lost (detail: why); the set stays
    };
    Kind kind = Kind::lost;
    std::int64_t revision = 0;
    std::vector<EtcdKeyValue> kvs;
    std::vector<EtcdEvent> events;
    std::string detail;
};

class EtcdWatch final : public DiscoveryWatch {
public:
    explicit EtcdWatch(Setup setup)
        : DiscoveryWatch(std::move(setup)),
          prefix_(discovery().prefix),
          client_(discovery().endpoints, discovery().timeout),
          set_(service()) {
        if (const int rc = uv_async_init(loop(), &async_, on_async); rc < 0) {
            throw std::runtime_error(fmt::format("uv_async_init: {}", uv_strerror(rc)));
        }
        async_.data = this;
        work_.data = this;
    }

    void start() {
        thread_ = std::thread([this] { run(); });
    }

    void close() override {
        {
            std::lock_guard lock(mutex_);
            closing_ = true;  // no update is sent from now on
        }
        wake_.notify_all();
        client_.stop();
        // The thread ends at once, or within a connect timeout when it is connecting to
        // an endpoint that does not answer: it is joined on libuv's thread pool, so the
        // loop never waits for it, and the loop does not end before it is joined.
        const int rc = uv_queue_work(
            loop(), &work_, [](uv_work_t* work) { static_cast<EtcdWatch*>(work->data)->join(); },
            [](uv_work_t* work, int) { static_cast<EtcdWatch*>(work->data)->close_handle(); });
        if (rc < 0) {
            spdlog::warn("{}: uv_queue_work: {}; joining the watch thread on the loop", label(),
                         uv_strerror(rc));
            join();
            close_handle();
        }
    }

private:
    void join() {
        if (thread_.joinable()) thread_.join();  // not when it could not start
    }

    void close_handle() {
        uv_close(reinterpret_cast<uv_handle_t*>(&async_),
                 [](uv_handle_t* handle) { delete static_cast<EtcdWatch*>(handle->data); });
    }

    // The watch's thread: read, watch, and on failure reconnect, until closed.
    void run() {
        std::optional<std::int64_t> revision;  // the latest seen; none: read the prefix
        Duration backoff = first_backoff;
        while (!client_.stopped()) {
            try {
                if (!revision) {
                    EtcdListing listing = client_.range_prefix(prefix_);
                    revision = listing.revision;
                    send({Update::Kind::listing, listing.revision, std::move(listing.kvs), {}, {}});
                }
                client_.watch_prefix(
                    prefix_, *revision + 1,
                    [&] {
                        backoff = first_backoff;
                        send({Update::Kind::watching, *revision, {}, {}, client_.endpoint()});
                    },
                    [&](std::int64_t latest, std::vector<EtcdEvent> events) {
                        revision = std::max(*revision, latest);
                        send({Update::Kind::events, *revision, {}, std::move(events), {}});
                    });
            } catch (const EtcdCompacted& e) {
                // Events were lost to the compaction: only a new read of the whole prefix
                // tells what the set is now.
                revision.reset();
                send({Update::Kind::lost, 0, {}, {}, e.what()});
            } catch (const std::exception& e) {  // EtcdError, or an answer not as expected
                if (client_.stopped()) break;
                send({Update::Kind::lost, 0, {}, {}, e.what()});
                std::unique_lock lock(mutex_);
                wake_.wait_for(lock, std::chrono::milliseconds(backoff.count()),
                               [this] { return closing_; });
                backoff = std::min(backoff * 2, max_backoff);
            }
        }
    }

    // From the thread: queues `update` for the loop.
    void send(Update update) {
        std::lock_guard lock(mutex_);
        if (closing_) return;  // the handle may be closing
        updates_.push_back(std::move(update));
        if (const int rc = uv_async_send(&async_); rc < 0) {
            spdlog::error("{}: uv_async_send: {}", label(), uv_strerror(rc));
        }
    }

    static void on_async(uv_async_t* handle) { static_cast<EtcdWatch*>(handle->data)->apply(); }

    // On the loop: what the thread saw becomes the set in use.
    void apply() {
        std::vector<Update> updates;
        {
            std::lock_guard lock(mutex_);
            if (closing_) return;
            updates.swap(updates_);
        }
        DiscoveryStats& counters = *stats();
        std::vector<std::string> invalid;
        bool read = false;
        for (Update& update : updates) {
            switch (update.kind) {
                case Update::Kind::listing:
                    spdlog::debug("{}: {} key{} at revision {}", label(), update.kvs.size(),
                                  update.kvs.size() == 1 ? "" : "s", update.revision);
                    set_.relist(update.kvs, invalid);
                    read = true;
                    break;
                case Update::Kind::events:
                    for (const EtcdEvent& event : update.events) {
                        if (!set_.apply(event, invalid)) continue;
                        spdlog::debug("{}: {} {} at revision {}", label(),
                                      event.deleted ? "delete" : "put", event.kv.key,
                                      event.revision);
                        counters.events.fetch_add(1, std::memory_order_relaxed);
                        read = true;
                    }
                    break;
                case Update::Kind::watching:
                    counters.watch_up.store(true, std::memory_order_relaxed);
                    spdlog::info("{}: watching {}{} from revision {}", label(), update.detail,
                                 lost_ ? " again" : "", update.revision + 1);
                    lost_ = false;
                    break;
                case Update::Kind::lost:
                    counters.watch_up.store(false, std::memory_order_relaxed);
                    if (!lost_) {
                        spdlog::warn("{}: etcd: {}; keeping its {} backend{}, reconnecting",
                                     label(), update.detail, current().size(),
                                     current().size() == 1 ? "" : "s");
                    } else {
                        spdlog::debug("{}: etcd: {}", label(), update.detail);
                    }
                    lost_ = true;
                    break;
            }
            if (update.revision > 0) {
                counters.revision.store(update.revision, std::memory_order_relaxed);
            }
        }
        for (const std::string& why : invalid) spdlog::warn("{}: {}", label(), why);
        counters.invalid_values.fetch_add(invalid.size(), std::memory_order_relaxed);
        if (read) replace(set_.backends());
    }

    const std::string prefix_;
    EtcdClient client_;   // the thread's; stop() from the loop
    EtcdBackendSet set_;  // the loop's
    bool lost_ = false;   // the loop's: etcd was lost and not watched since
    uv_async_t async_{};
    uv_work_t work_{};
    std::thread thread_;
    std::mutex mutex_;  // guards what follows
    std::condition_variable wake_;
    bool closing_ = false;
    std::vector<Update> updates_;
};

}  // namespace

DiscoveryWatch::Ptr open_etcd_watch(DiscoveryWatch::Setup setup) {
    auto* watch = new EtcdWatch(std::move(setup));
    DiscoveryWatch::Ptr owned(watch);
    watch->start();
    return owned;
}

}  // namespace fulcrum
