#pragma once
// One non-HTTP check (tcp, send-expect, redis, postgres, mysql) on a libuv loop: connect,
// write the check's request, read and judge the reply (check_protocol.hpp), all bounded
// by `health.timeout`. Nothing blocks, so a backend that hangs costs only its own check.
//
// The verdict is reported as soon as it is known; the connection then leaves politely
// (the farewell, a FIN, and the peer's bytes read until its own FIN, within what is left
// of the timeout), so that the backend sees an orderly close, not a reset.

#include <uv.h>

#include <functional>

#include "fulcrum/config/config.hpp"
#include "fulcrum/health/probe_result.hpp"

namespace fulcrum {

// Runs on the loop thread, exactly once per probe.
using ProbeDone = std::function<void(const ProbeResult&)>;

// Starts a probe of `backend` on `loop` (health.type is not http). With health.send_proxy
// it starts with the backend's PROXY header version, as a LOCAL header. The probe owns
// itself and frees itself once its handles are closed.
void start_tcp_probe(uv_loop_t* loop, const HealthConfig& health, const BackendConfig& backend,
                     ProbeDone done);

}  // namespace fulcrum
