#pragma once
// One HTTP health probe: GET the health path of a backend and judge the status. It ends
// at `health.timeout`, wall clock, whatever the peer does (a response dribbled one byte
// at a time included), and reads only the status line and headers, at most
// `max_response_head` bytes of them: the body is never read.

#include <cstddef>
#include <string>

#include "fulcrum/config/config.hpp"
#include "fulcrum/health/probe_result.hpp"

namespace fulcrum {

// The most a probe reads of a response: its status line and headers.
inline constexpr std::size_t max_response_head = 16 * 1024;

// One blocking probe (runs on a probe thread). With health.send_proxy it starts with the
// backend's PROXY header version, as a LOCAL header.
ProbeResult probe_backend(const HealthConfig& health, const BackendConfig& backend);

}  // namespace fulcrum
