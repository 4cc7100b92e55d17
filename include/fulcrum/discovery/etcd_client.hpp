#pragma once
// A blocking client of etcd's v3 JSON gateway (HTTP/1.1, keys and values in base64),
// for a thread of its own: a range read and a watch of a prefix for discovery; leases,
// puts and deletes for `fulcrum register`. Requests go to the endpoint that last answered
// and move on to the next one when it cannot be reached. stop(), from any thread, ends
// the request in progress (the watch's stream included) and every later one.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "fulcrum/config/duration.hpp"

namespace httplib {
class Client;
}

namespace fulcrum {

// etcd could not be reached, answered with an error, or stop() was called.
class EtcdError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A watch whose start revision was compacted away: only a new range read can go on.
class EtcdCompacted : public EtcdError {
public:
    explicit EtcdCompacted(std::int64_t compact_revision);
};

struct EtcdKeyValue {
    std::string key;  // decoded
    std::string value;
    bool operator==(const EtcdKeyValue&) const = default;
};

struct EtcdEvent {
    bool deleted = false;  // a delete (lease expiry included), else a put
    EtcdKeyValue kv;       // a delete has no value
    std::int64_t revision = 0;
};

// The keys under a prefix and the store's revision they were read at.
struct EtcdListing {
    std::int64_t revision = 0;
    std::vector<EtcdKeyValue> kvs;
};

class EtcdClient {
public:
    // `endpoints`: "http://host:port". `timeout` bounds connecting and each request but
    // the watch, whose stream may stay quiet for as long as nothing changes.
    EtcdClient(std::vector<std::string> endpoints, Duration timeout);
    ~EtcdClient();
    EtcdClient(const EtcdClient&) = delete;
    EtcdClient& operator=(const EtcdClient&) = delete;

    // Every key under `prefix` (its range end is the prefix with its last byte + 1).
    EtcdListing range_prefix(const std::string& prefix);
    // Watches `prefix` from `start_revision` on: `on_created` once etcd confirmed the
    // watch, `on_progress(revision, events)` for each batch of events and for each
    // progress notice (no events: every event up to `revision` was sent). Returns only
    // when stopped; throws EtcdCompacted when `start_revision` was compacted, EtcdError
    // when the stream breaks.
    using Progress = std::function<void(std::int64_t revision, std::vector<EtcdEvent> events)>;
    void watch_prefix(const std::string& prefix, std::int64_t start_revision,
                      const std::function<void()>& on_created, const Progress& on_progress);

    // A lease of `ttl_seconds`; its ID.
    std::int64_t grant_lease(std::int64_t ttl_seconds);
    // Renews `lease`; false when etcd no longer has it (it expired).
    bool keep_alive(std::int64_t lease);
    void revoke_lease(std::int64_t lease);
    // `lease` 0: none.
    void put(const std::string& key, const std::string& value, std::int64_t lease);
    void remove(const std::string& key);

    // From any thread: the request in progress returns (EtcdError), later ones throw.
    void stop();
    bool stopped() const { return stopped_.load(); }

    // The endpoint requests go to now.
    const std::string& endpoint() const;

private:
    // POSTs `body` (JSON) to `path`, trying each endpoint once from the current one; the
    // parsed answer. Throws EtcdError.
    std::string post(const std::string& path, const std::string& body);
    // Registers `client` as the one stop() cancels; throws when already stopped.
    void begin(httplib::Client* client);
    void end();

    std::vector<std::string> endpoints_;
    Duration timeout_;
    std::atomic<std::size_t> current_{0};
    std::atomic<bool> stopped_{false};
    std::mutex mutex_;
    httplib::Client* active_ = nullptr;  // the request in progress, for stop()
};

}  // namespace fulcrum
