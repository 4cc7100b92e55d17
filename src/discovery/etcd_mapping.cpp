#include "fulcrum/discovery/etcd_mapping.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <stdexcept>

namespace fulcrum {
namespace {

// Whether the host of "host:port" or "[v6]:port" is an IP address. A text without a
// port passes: parse_address says what is missing.
bool numeric_host(std::string_view text) {
    std::string host;
    if (text.starts_with('[')) {
        host = text.substr(1, text.find(']') - 1);
    } else if (const std::size_t colon = text.rfind(':'); colon != std::string_view::npos) {
        host = text.substr(0, colon);
    } else {
        return true;
    }
    in6_addr scratch{};
    return ::inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), &scratch) == 1;
}

}  // namespace

std::optional<std::string> etcd_backend_name(std::string_view key, std::string_view prefix) {
    if (!key.starts_with(prefix)) return std::nullopt;
    const std::string_view name = key.substr(prefix.size());
    if (name.empty() || name.find('/') != std::string_view::npos) return std::nullopt;
    return std::string(name);
}

BackendConfig backend_from_etcd_value(std::string name, std::string_view value,
                                      const ServiceConfig& service) {
    using nlohmann::json;
    const json object = json::parse(value, nullptr, false);
    if (object.is_discarded()) throw std::invalid_argument("not valid JSON");
    if (!object.is_object()) throw std::invalid_argument("not a JSON object");
    const auto address = object.find("address");
    if (address == object.end() || !address->is_string()) {
        throw std::invalid_argument("\"address\" must be a string, \"ip:port\"");
    }
    BackendConfig backend;
    const std::string text = address->get<std::string>();
    // Checked before parse_address, which would resolve a host name (and block the loop).
    if (!numeric_host(text)) {
        throw std::invalid_argument(
            fmt::format("\"address\": \"{}\" is not numeric; write \"10.0.0.5:6379\" or "
                        "\"[fd00::5]:6379\"",
                        text));
    }
    try {
        backend.address = parse_address(text);
    } catch (const AddressError& e) {
        throw std::invalid_argument(fmt::format("\"address\": {}", e.what()));
    }
    if (backend.address.port() == 0) throw std::invalid_argument("\"address\": port 0");
    if (const auto weight = object.find("weight"); weight != object.end()) {
        if (!weight->is_number_integer() || weight->get<std::int64_t>() < 1 ||
            weight->get<std::int64_t>() > std::numeric_limits<int>::max()) {
            throw std::invalid_argument("\"weight\" must be an integer of at least 1");
        }
        backend.weight = weight->get<int>();
    }
    if (const auto drain = object.find("drain"); drain != object.end()) {
        if (!drain->is_boolean()) throw std::invalid_argument("\"drain\" must be true or false");
        backend.drain = drain->get<bool>();
    }
    backend.name = std::move(name);
    backend.send_proxy = service.send_proxy;
    backend.source = BackendSource::etcd;
    return backend;
}

EtcdBackendSet::EtcdBackendSet(const ServiceConfig& service) : service_(service) {}

void EtcdBackendSet::put(const EtcdKeyValue& kv, const std::string& name,
                         std::map<std::string, BackendConfig>& into,
                         const std::map<std::string, BackendConfig>& fallback,
                         std::vector<std::string>& invalid) const {
    try {
        into.insert_or_assign(name, backend_from_etcd_value(name, kv.value, service_));
    } catch (const std::invalid_argument& e) {
        const auto previous = fallback.find(name);
        invalid.push_back(
            fmt::format("key {}: {}{}", kv.key, e.what(),
                        previous != fallback.end() ? "; the previous value stays" : "; skipped"));
        if (previous != fallback.end() && &into != &fallback) {
            into.insert_or_assign(name, previous->second);
        }
    }
}

void EtcdBackendSet::relist(const std::vector<EtcdKeyValue>& kvs,
                            std::vector<std::string>& invalid) {
    std::map<std::string, BackendConfig> next;
    for (const EtcdKeyValue& kv : kvs) {
        if (const auto name = etcd_backend_name(kv.key, service_.discovery->prefix)) {
            put(kv, *name, next, backends_, invalid);
        }
    }
    backends_ = std::move(next);
}

bool EtcdBackendSet::apply(const EtcdEvent& event, std::vector<std::string>& invalid) {
    const auto name = etcd_backend_name(event.kv.key, service_.discovery->prefix);
    if (!name) return false;
    if (event.deleted) {
        backends_.erase(*name);
    } else {
        put(event.kv, *name, backends_, backends_, invalid);
    }
    return true;
}

std::vector<BackendConfig> EtcdBackendSet::backends() const {
    std::vector<BackendConfig> out;
    out.reserve(backends_.size());
    for (const auto& [name, backend] : backends_) out.push_back(backend);
    return out;
}

}  // namespace fulcrum
