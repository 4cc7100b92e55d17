#include "fulcrum/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <ctime>
#include <iterator>
#include <memory>
#include <string>

#if FULCRUM_HAVE_SYSTEMD
#include <spdlog/sinks/systemd_sink.h>
#endif

namespace fulcrum {

namespace {

LogFormat active_format = LogFormat::text;

// The fields of the access-log record being logged on this thread, for the JSON
// formatter; null for every other line.
thread_local std::span<const LogField> record_fields;

// syslog's names, which journald and log collectors filter on.
std::string_view syslog_level(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return "debug";
        case spdlog::level::info:
            return "info";
        case spdlog::level::warn:
            return "warning";
        case spdlog::level::err:
            return "err";
        case spdlog::level::critical:
            return "crit";
        default:
            return "info";
    }
}

void append_json_string(spdlog::memory_buf_t& out, std::string_view text) {
    out.push_back('"');
    for (const char c : text) {
        switch (c) {
            case '"':
                out.append(std::string_view("\\\""));
                break;
            case '\\':
                out.append(std::string_view("\\\\"));
                break;
            case '\n':
                out.append(std::string_view("\\n"));
                break;
            case '\r':
                out.append(std::string_view("\\r"));
                break;
            case '\t':
                out.append(std::string_view("\\t"));
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

// "2026-12-07T18:40:29.123+01:00": local time with its offset from UTC.
void append_timestamp(spdlog::memory_buf_t& out, spdlog::log_clock::time_point time) {
    const auto since_epoch = time.time_since_epoch();
    const std::time_t seconds =
        std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
    std::tm local{};
    localtime_r(&seconds, &local);
    const long offset_minutes = local.tm_gmtoff / 60;
    fmt::format_to(std::back_inserter(out),
                   "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}{:02}:{:02}", local.tm_year + 1900,
                   local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
                   millis, offset_minutes < 0 ? '-' : '+', std::labs(offset_minutes) / 60,
                   std::labs(offset_minutes) % 60);
}

// One JSON object per line: time, level, msg, then the access-log record's fields.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& out) override {
        out.append(std::string_view("{\"time\":\""));
        append_timestamp(out, msg.time);
        out.append(std::string_view("\",\"level\":\""));
        out.append(syslog_level(msg.level));
        out.append(std::string_view("\",\"msg\":"));
        append_json_string(out, std::string_view(msg.payload.data(), msg.payload.size()));
        for (const LogField& field : record_fields) {
            out.push_back(',');
            append_json_string(out, field.key);
            out.push_back(':');
            if (const auto* number = std::get_if<std::uint64_t>(&field.value)) {
                fmt::format_to(std::back_inserter(out), "{}", *number);
            } else {
                append_json_string(out, std::get<std::string_view>(field.value));
            }
        }
        out.append(std::string_view("}\n"));
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }
};

spdlog::sink_ptr make_sink(LogTarget target) {
    switch (target) {
        case LogTarget::stdout_stream:
            return std::make_shared<spdlog::sinks::stdout_sink_mt>();
        case LogTarget::journal:
#if FULCRUM_HAVE_SYSTEMD
            // The journal keeps its own time and priority: the message goes as it is.
            return std::make_shared<spdlog::sinks::systemd_sink_mt>("fulcrum", false);
#endif
        case LogTarget::stderr_stream:
            break;
    }
    return std::make_shared<spdlog::sinks::stderr_sink_mt>();
}

}  // namespace

void configure_logging(const LogConfig& log) {
    // The journal stores the message and its own fields: it gets the text.
    active_format = log.target == LogTarget::journal ? LogFormat::text : log.format;
    auto logger = std::make_shared<spdlog::logger>("fulcrum", make_sink(log.target));
    if (active_format == LogFormat::json) {
        logger->set_formatter(std::make_unique<JsonFormatter>());
    } else {
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    }
    logger->set_level(spdlog::level::from_str(log.level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

void log_access(std::span<const LogField> fields) {
    if (active_format == LogFormat::json) {
        record_fields = fields;
        spdlog::info("access");
        record_fields = {};
        return;
    }
    fmt::memory_buffer line;
    line.append(std::string_view("access"));
    for (const LogField& field : fields) {
        if (const auto* number = std::get_if<std::uint64_t>(&field.value)) {
            fmt::format_to(std::back_inserter(line), " {}={}", field.key, *number);
        } else {
            fmt::format_to(std::back_inserter(line), " {}={}", field.key,
                           std::get<std::string_view>(field.value));
        }
    }
    spdlog::info("{}", std::string_view(line.data(), line.size()));
}

}  // namespace fulcrum
