#pragma once
// What a reload changes, decided from the two configurations alone (no sockets, no
// state), so that it can be tested on its own; Server::apply carries it out. Listening
// sockets belong to listen addresses, not services: services that share an address (by
// server name) share one listener, which a reload keeps while any service is on it.

#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"

namespace fulcrum {

// Which of our listeners serves `service`: its listen address in numeric form, shared by
// every service on it; with port 0 (any free port) the service's own.
std::string listener_key(const ServiceConfig& service);

struct ReloadPlan {
    // Listener keys to bind: addresses none of our listeners serves now, so they must be
    // free (no second fulcrum there).
    std::vector<std::string> bind;
    std::vector<std::string> retire;   // listener keys to close: no service left on them
    std::vector<std::string> changed;  // services on the same listener, new settings or backends
    // Settings a reload cannot change, with a note: they apply at the next start.
    std::vector<std::string> need_restart;
    // One line for the log: "service web changed: backends +b2 -b0 ~b1; service api added"
    std::string summary;
};

// `before` is empty (no services) at start.
ReloadPlan plan_reload(const Config& before, const Config& after);

}  // namespace fulcrum
