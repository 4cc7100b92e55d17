#pragma once
// What one listen address serves, as one (re)configuration defines it: one service, or
// several chosen by the server name of the client's TLS ClientHello. Immutable once
// published; a listener accepts under the current one, and a reload swaps it without
// closing the listening sockets.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/server_name_router.hpp"
#include "fulcrum/lb/service_state.hpp"
#include "fulcrum/stats/metrics.hpp"

namespace fulcrum {

struct ListenRoutes {
    std::string listen;  // the address as configured: log lines, the metrics' `listen` label
    std::vector<std::shared_ptr<const ServiceState>> services;  // configuration order, one or more
    // Set when the services have server_names: a session reads the ClientHello, and the
    // router gives the index of its service. Unset: the one service takes every
    // connection at accept, with no pre-read of TLS.
    std::optional<ServerNameRouter> router;
    // Kept across reloads for as long as the address is served.
    std::shared_ptr<ListenCounters> counters;

    // The settings read before a service is chosen (accept_proxy, proxy_trusted,
    // proxy_timeout, preread_timeout, sni_require_tls): the configuration makes them the
    // same on every service of the address.
    const ServiceConfig& address_settings() const { return *services.front()->config; }
};

}  // namespace fulcrum
