#include "fulcrum/config/config.hpp"

#include <string>
#include <vector>

#include "fulcrum/config/reader.hpp"
#include "fulcrum/config/schema.hpp"

namespace fulcrum {
namespace {

constexpr std::string_view embedded_default =
    R"(# fulcrum's embedded default, used when no configuration file is given.
[[service]]
name = "default"
listen = "0.0.0.0:8080"
strategy = "round-robin"
on_failure = "http-502"

[service.health]
path = "/health"
interval = "2s"

[[service.backend]]
address = "127.0.0.1:3001"

[[service.backend]]
address = "127.0.0.1:3002"
)";

// The lines joined by newlines, sized once: a hostile file can have 100,000 errors.
std::string joined_lines(const std::vector<std::string>& lines) {
    std::size_t size = 0;
    for (const std::string& line : lines) size += line.size() + 1;
    std::string text;
    text.reserve(size);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) text += '\n';
        text += lines[i];
    }
    return text;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> errors)
    : std::runtime_error(joined_lines(errors)), errors_(std::move(errors)) {}

Config load_config_file(const std::string& path) {
    return load_config_text(config_reader::read_file(path), path);
}

Config load_config_text(std::string_view text, const std::string& source_name) {
    const config_reader::Value root = config_reader::parse(text, source_name);
    config_reader::Errors errors(source_name);
    Config config;
    config.source = source_name;
    config_reader::Section section(errors, root, "");
    config_schema::read_config(section, config);
    section.report_unknown_keys();
    errors.throw_if_any();
    return config;
}

std::string_view default_config_text() {
    return embedded_default;
}

Config default_config() {
    return load_config_text(default_config_text(), "<default>");
}

}  // namespace fulcrum
