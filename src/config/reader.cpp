#include "fulcrum/config/reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

#include "fulcrum/config/config.hpp"

namespace fulcrum::config_reader {
namespace {

// Optimal string alignment distance: edits, counting a swap of neighbours as one.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

// "service[0].backend" -> "service.backend", the name of its [[...]] header.
std::string header_name(std::string_view path) {
    std::string name;
    bool in_index = false;
    for (const char c : path) {
        if (c == '[') in_index = true;
        if (!in_index) name += c;
        if (c == ']') in_index = false;
    }
    return name;
}

}  // namespace

std::string read_file(const std::string& path) {
    const auto cannot_read = [&path](int error) {
        return ConfigError(
            {fmt::format("{}: cannot read: {}", path, std::generic_category().message(error))});
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw cannot_read(errno);
    std::string text;
    char buffer[65536];
    while (const ssize_t n = ::read(fd, buffer, sizeof buffer)) {
        if (n > 0) {
            text.append(buffer, static_cast<std::size_t>(n));
        } else if (errno != EINTR) {
            const int error = errno;
            ::close(fd);
            throw cannot_read(error);
        }
    }
    ::close(fd);
    return text;
}

Value parse(std::string_view text, const std::string& source_name) {
    try {
        std::istringstream stream{std::string(text)};
        return toml::parse<toml::discard_comments, std::map, std::vector>(stream, source_name);
    } catch (const toml::exception& error) {
        // toml11's message already names the file and shows the offending line.
        throw ConfigError({error.what()});
    }
}

std::string_view type_name(toml::value_t type) {
    switch (type) {
        case toml::value_t::empty:
            return "nothing";
        case toml::value_t::boolean:
            return "a boolean";
        case toml::value_t::integer:
            return "an integer";
        case toml::value_t::floating:
            return "a float";
        case toml::value_t::string:
            return "a string";
        case toml::value_t::offset_datetime:
            return "a date-time";
        case toml::value_t::local_datetime:
            return "a local date-time";
        case toml::value_t::local_date:
            return "a date";
        case toml::value_t::local_time:
            return "a time";
        case toml::value_t::array:
            return "an array";
        case toml::value_t::table:
            return "a table";
    }
    return "an unknown type";
}

void expect_type(const Value& value, toml::value_t type) {
    if (value.type() != type) {
        throw Invalid(fmt::format("expected {}, got {}", type_name(type), type_name(value.type())));
    }
}

// Optimal string alignment distance: edits, counting a swap of neighbours as one.
void Errors::add(const Value& at, std::string_view path, std::string_view message) {
    const toml::source_location where = at.location();
    entries_.push_back({where.line(), where.column(),
                        fmt::format("{}:{}:{}: {}: {}", where.file_name(), where.line(),
                                    where.column(), path, message)});
}

void Errors::throw_if_any() {
    if (entries_.empty()) return;
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    std::vector<std::string> lines;
    for (Entry& entry : entries_) lines.push_back(std::move(entry.text));
    throw ConfigError(std::move(lines));
}

const Value* Section::find(std::string_view key) {
    known_.emplace(key);
    const auto& table = table_.as_table();
    const auto it = table.find(std::string(key));
    return it == table.end() ? nullptr : &it->second;
}

void Section::error(std::string_view key, std::string_view message) {
    const Value* value = find(key);
    errors_.add(value != nullptr ? *value : table_, path_of(key), message);
}

const Value* Section::array_of_tables(std::string_view key) {
    const Value* value = find(key);
    const std::string path = path_of(key);
    const std::string header = header_name(path);
    if (value == nullptr) {
        error(key, fmt::format("missing required key; add at least one [[{}]]", header));
        return nullptr;
    }
    if (!value->is_array()) {
        errors_.add(*value, path,
                    fmt::format("expected an array of tables ([[{}]]), got {}", header,
                                type_name(value->type())));
        return nullptr;
    }
    if (value->as_array().empty()) {
        error(key, fmt::format("empty {} list; add at least one [[{}]]", key, header));
    }
    return value;
}

void Section::report_unknown_keys() {
    for (const auto& [key, value] : table_.as_table()) {
        if (known_.contains(key)) continue;
        errors_.add(value, path_of(key), unknown_key_message(key));
    }
}

std::string Section::unknown_key_message(std::string_view key) const {
    const std::string* nearest = nullptr;
    std::size_t nearest_distance = std::numeric_limits<std::size_t>::max();
    for (const std::string& candidate : known_) {
        const std::size_t distance = edit_distance(key, candidate);
        if (distance < nearest_distance) {
            nearest = &candidate;
            nearest_distance = distance;
        }
    }
    // Close enough to be a typo: about one edit per three characters.
    if (nearest != nullptr && nearest_distance <= std::max<std::size_t>(1, nearest->size() / 3)) {
        return fmt::format("unknown key; did you mean '{}'?", *nearest);
    }
    return fmt::format("unknown key; valid keys here: {}", fmt::join(known_, ", "));
}

}  // namespace fulcrum::config_reader
