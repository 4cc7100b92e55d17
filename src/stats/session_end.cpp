#include "fulcrum/stats/session_end.hpp"

namespace fulcrum {

std::string_view to_string(SessionEnd end) {
    switch (end) {
        case SessionEnd::client_fin:
            return "client-fin";
        case SessionEnd::backend_fin:
            return "backend-fin";
        case SessionEnd::client_reset:
            return "client-reset";
        case SessionEnd::backend_reset:
            return "backend-reset";
        case SessionEnd::idle_timeout:
            return "idle-timeout";
        case SessionEnd::connect_failed:
            return "connect-failed";
        case SessionEnd::no_backend:
            return "no-backend";
        case SessionEnd::queue_full:
            return "queue-full";
        case SessionEnd::queue_timeout:
            return "queue-timeout";
        case SessionEnd::limited:
            return "limited";
        case SessionEnd::drain_timeout:
            return "drain-timeout";
        case SessionEnd::refused:
            return "refused";
        case SessionEnd::bad_proxy_header:
            return "bad-proxy-header";
        case SessionEnd::no_service:
            return "no-service";
        case SessionEnd::shutdown:
            return "shutdown";
    }
    return "unknown";
}

std::string_view to_string(NoBackend reason) {
    switch (reason) {
        case NoBackend::no_eligible:
            return "no_eligible";
        case NoBackend::connect_failed:
            return "connect_failed";
        case NoBackend::queue_timeout:
            return "queue_timeout";
        case NoBackend::queue_full:
            return "queue_full";
    }
    return "unknown";
}

}  // namespace fulcrum
