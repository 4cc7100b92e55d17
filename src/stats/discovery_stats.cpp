#include "fulcrum/stats/discovery_stats.hpp"

namespace fulcrum {

std::string_view to_string(ResolutionResult v) {
    switch (v) {
        case ResolutionResult::ok:
            return "ok";
        case ResolutionResult::empty:
            return "empty";
        case ResolutionResult::nxdomain:
            return "nxdomain";
        case ResolutionResult::servfail:
            return "servfail";
        case ResolutionResult::timeout:
            return "timeout";
        case ResolutionResult::error:
            return "error";
    }
    return "unknown";
}

}  // namespace fulcrum
