#pragma once
// Logging goes through spdlog's default logger, flushed per line so that a supervisor (or
// a test) sees every line as it happens: to stderr, stdout or the journal, as text or as
// one JSON object per line (log.format). Timestamps are RFC 3339 with the UTC offset.

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>

#include "fulcrum/config/config.hpp"

namespace fulcrum {

// Builds the logger of `log` and makes it the default. Called once, before any thread
// but the caller logs; later level changes go through spdlog's set_level.
void configure_logging(const LogConfig& log);

// One field of an access-log record: text, or a number that JSON keeps a number.
struct LogField {
    std::string_view key;
    std::variant<std::string_view, std::uint64_t> value;
};

// Logs one access-log record at info: "access key=value ..." as text, or the fields as
// typed members of the JSON object beside "msg": "access".
void log_access(std::span<const LogField> fields);

}  // namespace fulcrum
