#pragma once
// What a reload changes, decided from the two configurations alone (no sockets, no
// state), so that it can be tested on its own; Server::apply carries it out.

#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"

namespace fulcrum {

struct ReloadPlan {
    struct Bind {
        std::string service;
        // No listener of ours serves the address now: it must be free (no second fulcrum).
        bool exclusive = true;
    };
    std::vector<Bind> bind;            // new services, and those whose listen address moved
    std::vector<std::string> retire;   // listeners to close: services removed or moved
    std::vector<std::string> changed;  // same listener, new settings or backends
    // Settings a reload cannot change, with a note: they apply at the next start.
    std::vector<std::string> need_restart;
    // One line for the log: "service web changed: backends +b2 -b0 ~b1; service api added"
    std::string summary;
};

// `before` is empty (no services) at start.
ReloadPlan plan_reload(const Config& before, const Config& after);

}  // namespace fulcrum
