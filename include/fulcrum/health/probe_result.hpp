#pragma once
// What one active probe saw, whatever its type: the health checker's input.

#include <string>

#include "fulcrum/stats/check_history.hpp"

namespace fulcrum {

struct ProbeResult {
    bool success = false;
    std::string detail;  // "status 200", "PONG", "refused", "timeout", "unexpected reply: ..."
    CheckFailure failure = CheckFailure::error;  // why, when it failed
};

}  // namespace fulcrum
