#pragma once
// etcd keys and values turned into backend configurations, without sockets, so the
// mapping is tested on its own. Each key directly under the prefix is one backend, named
// by its last segment; its value is JSON: {"address": "10.0.0.5:6379", "weight": 2,
// "drain": false}, weight and drain optional, other fields ignored (a registrar may keep
// its own there). The address is numeric: a host name would need a resolver on the main
// loop.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/discovery/etcd_client.hpp"

namespace fulcrum {

// The name of the backend `key` holds: the part after `prefix`; nullopt for a key
// outside it, the prefix itself, or one nested deeper ("prefix/a/b").
std::optional<std::string> etcd_backend_name(std::string_view key, std::string_view prefix);

// The backend named `name` that `value` describes, for `service` (its send_proxy
// applies). Throws std::invalid_argument saying what is wrong with the value.
BackendConfig backend_from_etcd_value(std::string name, std::string_view value,
                                      const ServiceConfig& service);

// The backends of one service's prefix as the store has them, kept through listings and
// events. A value that is not valid is left out and reported; when it replaces a valid
// one, the valid one stays.
class EtcdBackendSet {
public:
    // `service` as configured; it outlives the set.
    explicit EtcdBackendSet(const ServiceConfig& service);

    // The whole prefix, read anew: the set becomes what it holds. Each value that is not
    // valid is appended to `invalid` ("key /p/x: why").
    void relist(const std::vector<EtcdKeyValue>& kvs, std::vector<std::string>& invalid);
    // One put or delete; false when it is outside the set (a nested key).
    bool apply(const EtcdEvent& event, std::vector<std::string>& invalid);

    // Sorted by name.
    std::vector<BackendConfig> backends() const;

private:
    // Puts the backend of `kv` into `into`; when its value is not valid, the one
    // `fallback` has under that name, if any.
    void put(const EtcdKeyValue& kv, const std::string& name,
             std::map<std::string, BackendConfig>& into,
             const std::map<std::string, BackendConfig>& fallback,
             std::vector<std::string>& invalid) const;

    const ServiceConfig& service_;
    std::map<std::string, BackendConfig> backends_;  // by name
};

}  // namespace fulcrum
