#pragma once
// How a session ended, as the access log's `end=` and fulcrum_sessions_ended_total's
// `reason` name it.

#include <cstddef>
#include <string_view>

namespace fulcrum {

enum class SessionEnd {
    client_fin,        // the client finished first, then the backend; both directions complete
    backend_fin,       // the backend finished first, then the client
    client_reset,      // the client reset or failed; passed on to the backend as a reset
    backend_reset,     // the backend reset or failed (died mid-stream); passed on as a reset
    idle_timeout,      // no byte either way for idle_timeout
    connect_failed,    // every connect attempt failed; on_failure applied
    no_backend,        // no backend to try (all down, drained or empty); on_failure applied
    queue_full,        // every backend full and queue_max already waiting; on_failure applied
    queue_timeout,     // waited queue_timeout for a backend slot; on_failure applied
    limited,           // over a per-source limit or the service's connection rate
    drain_timeout,     // its backend was drained or removed drain_timeout ago
    refused,           // max_connections reached at accept
    bad_proxy_header,  // accept_proxy: no valid PROXY header in time, or an untrusted peer
    // Routing by server name chose no service: a malformed, late or non-TLS ClientHello,
    // or a name no service takes. Counted by fulcrum_preread_failures_total only.
    no_service,
    shutdown,  // still open when shutdown_timeout ran out
};
inline constexpr std::size_t session_end_count = 15;
std::string_view to_string(SessionEnd end);  // "client-fin", ...

// Why a connection got on_failure, as fulcrum_service_no_backend_total's `reason` says.
enum class NoBackend {
    no_eligible,     // every backend down, drained or gone: nothing was tried
    connect_failed,  // every attempt failed
    queue_timeout,   // waited queue_timeout for a backend slot
    queue_full,      // every backend full, queue_max waiting (or no queue)
};
inline constexpr std::size_t no_backend_count = 4;
std::string_view to_string(NoBackend reason);  // "no_eligible", ...

}  // namespace fulcrum
