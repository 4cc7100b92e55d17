#pragma once
// Logging goes through spdlog's default logger, to stderr, flushed per line so that a
// supervisor (or a test) sees every line as it happens.

#include <string_view>

namespace fulcrum {

// `level` is one of trace, debug, info, warn, error, critical, off (validated by config).
void configure_logging(std::string_view level);

}  // namespace fulcrum
