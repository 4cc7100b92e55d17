#include "fulcrum/discovery/etcd_registration.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "fulcrum/config/address.hpp"
#include "fulcrum/discovery/etcd_client.hpp"
#include "fulcrum/discovery/etcd_mapping.hpp"

namespace fulcrum {
namespace {

using namespace std::chrono_literals;

constexpr Duration request_timeout = 2s;
constexpr Duration retry_delay = 1s;

// Waits up to `delay` for SIGTERM or SIGINT (blocked, so they wait here); true when one
// came.
bool wait_for_signal(const sigset_t& signals, Duration delay) {
    const auto ms = std::max<std::int64_t>(1, delay.count());
    const timespec timeout{static_cast<std::time_t>(ms / 1000),
                           static_cast<long>(ms % 1000) * 1000000};
    while (true) {
        const int signal = ::sigtimedwait(&signals, nullptr, &timeout);
        if (signal > 0) {
            spdlog::info("{}: deregistering", strsignal(signal));
            return true;
        }
        if (errno == EAGAIN) return false;
        if (errno != EINTR) {
            spdlog::error("sigtimedwait: {}", std::strerror(errno));
            return false;
        }
    }
}

}  // namespace

std::string Registration::value() const {
    nlohmann::json value = {{"address", address}};
    if (weight) value["weight"] = *weight;
    return value.dump();
}

void check_registration(const Registration& registration) {
    if (registration.endpoints.empty()) throw std::invalid_argument("--etcd: none given");
    for (const std::string& endpoint : registration.endpoints) {
        try {
            parse_http_endpoint(endpoint);
        } catch (const AddressError& e) {
            throw std::invalid_argument(fmt::format("--etcd: {}", e.what()));
        }
    }
    if (registration.prefix.empty() || !registration.prefix.ends_with('/')) {
        throw std::invalid_argument("--prefix: must end with \"/\", e.g. /fulcrum/redis/");
    }
    if (!etcd_backend_name(registration.key(), registration.prefix)) {
        throw std::invalid_argument("--name: must be non-empty and without \"/\"");
    }
    if (registration.ttl < 1s) throw std::invalid_argument("--ttl: must be at least 1s");
    ServiceConfig service;
    service.discovery.emplace().prefix = registration.prefix;
    try {
        backend_from_etcd_value(registration.name, registration.value(), service);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("--address or --weight: {}", e.what()));
    }
}

int run_registration(const Registration& registration) {
    // Blocked before any thread could take them: they are taken by sigtimedwait only.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (const int rc = ::pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
        spdlog::critical("pthread_sigmask: {}", std::strerror(rc));
        return 1;
    }
    EtcdClient etcd(registration.endpoints, request_timeout);
    const std::string key = registration.key();
    const std::string value = registration.value();
    // etcd counts leases in whole seconds.
    const std::int64_t ttl_seconds =
        std::max<std::int64_t>(1, (registration.ttl.count() + 999) / 1000);
    const Duration renew_every = std::max<Duration>(registration.ttl / 3, 200ms);
    std::int64_t lease = 0;
    bool registered = false;  // the key is put with `lease`
    bool failing = false;     // logs the first failure of a run of them
    while (true) {
        Duration next = renew_every;
        try {
            if (lease == 0) lease = etcd.grant_lease(ttl_seconds);
            if (!registered) {
                etcd.put(key, value, lease);
                registered = true;
                spdlog::info("registered {} = {} with lease {:x} (ttl {}s) at {}", key, value,
                             lease, ttl_seconds, etcd.endpoint());
            } else if (!etcd.keep_alive(lease)) {
                spdlog::warn("lease {:x} expired; registering {} again", lease, key);
                lease = 0;
                registered = false;
                next = Duration::zero();
            }
            failing = false;
        } catch (const EtcdError& e) {
            if (!failing) spdlog::warn("etcd: {}; retrying", e.what());
            failing = true;
            next = std::min(renew_every, retry_delay);  // soon enough to keep the lease
        }
        if (wait_for_signal(signals, next)) break;
    }
    if (!registered) return 0;
    try {
        etcd.remove(key);
        etcd.revoke_lease(lease);
        spdlog::info("deleted {} and revoked lease {:x}", key, lease);
    } catch (const EtcdError& e) {
        spdlog::warn("etcd: {}; the key goes when lease {:x} expires", e.what(), lease);
        return 1;
    }
    return 0;
}

}  // namespace fulcrum
