#include "fulcrum/config/config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <toml.hpp>

namespace fulcrum {
namespace {

// std::map tables keep keys sorted, so unknown keys are reported in a stable order.
using Value = toml::basic_value<toml::discard_comments, std::map, std::vector>;

// ---------------------------------------------------------------------------------------
// Valid values of the enumerated keys, each list kept in one place.

template <typename Enum>
struct Choice {
    std::string_view name;
    Enum value;
};

constexpr std::array<Choice<StrategyKind>, 4> strategy_choices{{
    {"round-robin", StrategyKind::round_robin},
    {"least-connections", StrategyKind::least_connections},
    {"random-two", StrategyKind::random_two},
    {"source-hash", StrategyKind::source_hash},
}};

constexpr std::array<Choice<OnFailure>, 3> on_failure_choices{{
    {"close", OnFailure::close},
    {"reset", OnFailure::reset},
    {"http-502", OnFailure::http_502},
}};

constexpr std::array<Choice<AllUnhealthy>, 2> all_unhealthy_choices{{
    {"refuse", AllUnhealthy::refuse},
    {"fail-open", AllUnhealthy::fail_open},
}};

constexpr std::array<Choice<std::optional<ProxyVersion>>, 3> send_proxy_choices{{
    {"off", std::nullopt},
    {"v1", ProxyVersion::v1},
    {"v2", ProxyVersion::v2},
}};

// The level names spdlog understands.
constexpr std::array<std::string_view, 7> log_levels{"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};

template <typename Enum, std::size_t N>
std::string_view name_of(const std::array<Choice<Enum>, N>& choices, Enum value) {
    for (const auto& choice : choices) {
        if (choice.value == value) return choice.name;
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------
// Errors

// A value that cannot be used; the message follows "FILE:LINE:COL: KEYPATH: ".
class Invalid : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Every error of one file, reported together in file order.
class Errors {
public:
    void add(const Value& at, std::string_view path, std::string_view message) {
        const toml::source_location where = at.location();
        entries_.push_back({where.line(), where.column(),
                            fmt::format("{}:{}:{}: {}: {}", where.file_name(), where.line(),
                                        where.column(), path, message)});
    }

    // Runs `check`; an Invalid it throws becomes an error at `at`. Returns whether it passed.
    template <typename Check>
    bool attempt(const Value& at, std::string_view path, Check check) {
        try {
            check();
            return true;
        } catch (const Invalid& invalid) {
            add(at, path, invalid.what());
            return false;
        }
    }

    void throw_if_any() {
        if (entries_.empty()) return;
        std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
            return std::pair(a.line, a.column) < std::pair(b.line, b.column);
        });
        std::vector<std::string> lines;
        for (Entry& entry : entries_) lines.push_back(std::move(entry.text));
        throw ConfigError(std::move(lines));
    }

private:
    struct Entry {
        std::uint_least32_t line;
        std::uint_least32_t column;
        std::string text;
    };
    std::vector<Entry> entries_;
};

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

// ---------------------------------------------------------------------------------------
// Converters: TOML value -> configuration value, throwing Invalid with the reason.

std::string to_string_value(const Value& value) {
    expect_type(value, toml::value_t::string);
    return value.as_string().str;
}

bool to_bool(const Value& value) {
    expect_type(value, toml::value_t::boolean);
    return value.as_boolean();
}

std::string to_name(const Value& value) {
    std::string name = to_string_value(value);
    if (name.empty()) throw Invalid("must not be empty");
    return name;
}

template <typename Int>
auto integer_in_range(std::int64_t min, std::int64_t max) {
    // The tighter of `max` and what Int can hold.
    const std::int64_t limit = std::cmp_less(std::numeric_limits<Int>::max(), max)
                                   ? static_cast<std::int64_t>(std::numeric_limits<Int>::max())
                                   : max;
    return [min, limit](const Value& value) {
        expect_type(value, toml::value_t::integer);
        const std::int64_t number = value.as_integer();
        if (number < min) throw Invalid(fmt::format("must be at least {}", min));
        if (number > limit) throw Invalid(fmt::format("must be at most {}", limit));
        return static_cast<Int>(number);
    };
}

template <typename Int>
auto integer_at_least(std::int64_t min) {
    return integer_in_range<Int>(min, std::numeric_limits<std::int64_t>::max());
}

// Throws Invalid listing the valid values.
template <typename Names>
[[noreturn]] void throw_unknown_value(std::string_view text, const Names& names) {
    std::string list;
    for (const std::string_view name : names) {
        fmt::format_to(std::back_inserter(list), "{}\"{}\"", list.empty() ? "" : ", ", name);
    }
    throw Invalid(fmt::format("unknown value \"{}\"; valid values: {}", text, list));
}

template <std::size_t N>
auto one_of(const std::array<std::string_view, N>& names) {
    return [&names](const Value& value) {
        std::string text = to_string_value(value);
        if (std::find(names.begin(), names.end(), text) == names.end()) {
            throw_unknown_value(text, names);
        }
        return text;
    };
}

template <typename Enum, std::size_t N>
auto one_of(const std::array<Choice<Enum>, N>& choices) {
    return [&choices](const Value& value) {
        const std::string text = to_string_value(value);
        std::array<std::string_view, N> names;
        for (std::size_t i = 0; i < N; ++i) {
            if (choices[i].name == text) return choices[i].value;
            names[i] = choices[i].name;
        }
        throw_unknown_value(text, names);
    };
}

Duration to_duration(const Value& value) {
    if (!value.is_string()) {
        throw Invalid(fmt::format("expected a duration string such as \"2s\", got {}",
                                  type_name(value.type())));
    }
    const std::string& text = value.as_string().str;
    if (const auto duration = parse_duration(text)) return *duration;
    if (!text.empty() &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw Invalid(fmt::format(
            "\"{}\" has no unit; a unit is required (ms, s, m or h), e.g. \"{}s\"", text, text));
    }
    throw Invalid(
        fmt::format("\"{}\" is not a valid duration; write <number><unit> parts with "
                    "units ms, s, m or h, e.g. \"250ms\", \"2s\", \"1m30s\"",
                    text));
}

Duration to_positive_duration(const Value& value) {
    const Duration duration = to_duration(value);
    if (duration <= Duration::zero()) throw Invalid("must be greater than 0");
    return duration;
}

// `parse` (parse_address, parse_cidr) applied to a string value; its AddressError, which
// says what is wrong, becomes the error of the key.
template <typename Parse>
auto parsed_with(const Value& value, Parse parse) {
    const std::string text = to_string_value(value);
    try {
        return parse(text);
    } catch (const AddressError& error) {
        throw Invalid(error.what());
    }
}

// A listening address: port 0 (any free port) is allowed.
Address to_address(const Value& value) {
    return parsed_with(value, parse_address);
}

Address to_backend_address(const Value& value) {
    Address address = to_address(value);
    if (address.port() == 0) throw Invalid("port 0 is not allowed for a backend (use 1-65535)");
    return address;
}

Cidr to_cidr(const Value& value) {
    return parsed_with(value, parse_cidr);
}

// An HTTP status range, "200-399", or one status, "200".
std::pair<int, int> to_status_range(const Value& value) {
    const std::string text = to_string_value(value);
    int low = 0;
    int high = 0;
    char dash = 0;
    char extra = 0;
    const int fields = std::sscanf(text.c_str(), "%d%c%d%c", &low, &dash, &high, &extra);
    if (fields == 1) high = low;
    const bool well_formed = fields == 1 || (fields == 3 && dash == '-');
    if (!well_formed || low < 100 || high > 599 || low > high) {
        throw Invalid(
            fmt::format("\"{}\" is not a status range; write e.g. \"200-399\" or "
                        "\"200\" (statuses 100-599)",
                        text));
    }
    return {low, high};
}

unsigned to_workers(const Value& value) {
    if (value.is_string() && value.as_string().str == "auto") return 0;
    if (!value.is_integer()) {
        throw Invalid(fmt::format("expected \"auto\" or an integer of at least 1, got {}",
                                  value.is_string() ? fmt::format("\"{}\"", value.as_string().str)
                                                    : std::string(type_name(value.type()))));
    }
    return integer_at_least<unsigned>(1)(value);
}

// The path of the health request, written verbatim into the request line.
std::string to_http_path(const Value& value) {
    std::string path = to_string_value(value);
    if (!path.starts_with('/')) throw Invalid("must start with '/'");
    if (std::any_of(path.begin(), path.end(),
                    [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
        throw Invalid("must not contain spaces or control characters");
    }
    return path;
}

// A secret sent as "Authorization: Bearer <token>": visible ASCII, so that it fits an HTTP
// header as written.
std::string to_bearer_token(const Value& value) {
    std::string token = to_name(value);
    if (std::any_of(token.begin(), token.end(),
                    [](unsigned char c) { return c <= ' ' || c >= 0x7f; })) {
        throw Invalid("must be visible ASCII characters only (no spaces or control characters)");
    }
    return token;
}

// ---------------------------------------------------------------------------------------
// Reading tables

enum class Need { optional, required };
enum class Outcome { absent, invalid, valid };

// One TOML table being read. It remembers which keys were asked for, so that whatever
// is left can be reported as unknown, with the nearest known key as a suggestion.
class Section {
public:
    Section(Errors& errors, const Value& table, std::string path)
        : errors_(errors), table_(table), path_(std::move(path)) {}

    const std::string& path() const { return path_; }

    std::string path_of(std::string_view key) const {
        return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
    }

    // The value of `key`, or nullptr when it is absent.
    const Value* find(std::string_view key) {
        known_.emplace(key);
        const auto& table = table_.as_table();
        const auto it = table.find(std::string(key));
        return it == table.end() ? nullptr : &it->second;
    }

    // Reports `message` at the value of `key`, or at the table when `key` is absent.
    void error(std::string_view key, std::string_view message) {
        const Value* value = find(key);
        errors_.add(value != nullptr ? *value : table_, path_of(key), message);
    }

    // Stores `convert(value of key)` in `out` when the key is present and valid; otherwise
    // `out` keeps its default and the problem is reported.
    template <typename T, typename Convert>
    Outcome read(std::string_view key, T& out, Convert convert, Need need = Need::optional) {
        const Value* value = find(key);
        if (value == nullptr) {
            if (need == Need::required) error(key, "missing required key");
            return Outcome::absent;
        }
        const bool valid = errors_.attempt(*value, path_of(key), [&] { out = convert(*value); });
        return valid ? Outcome::valid : Outcome::invalid;
    }

    // Reads the array `key` element by element, so that an error points at its element.
    template <typename T, typename Convert>
    Outcome read_list(std::string_view key, std::vector<T>& out, Convert convert) {
        const Value* value = find(key);
        if (value == nullptr) return Outcome::absent;
        const std::string path = path_of(key);
        if (!errors_.attempt(*value, path, [&] { expect_type(*value, toml::value_t::array); })) {
            return Outcome::invalid;
        }
        Outcome outcome = Outcome::valid;
        const auto& items = value->as_array();
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (!errors_.attempt(items[i], fmt::format("{}[{}]", path, i),
                                 [&] { out.push_back(convert(items[i])); })) {
                outcome = Outcome::invalid;
            }
        }
        return outcome;
    }

    // Reads the sub-table `key` ([log], [service.health], ...) with `read_body` when present.
    template <typename ReadBody>
    void table(std::string_view key, ReadBody read_body) {
        const Value* value = find(key);
        if (value == nullptr) return;
        const std::string path = path_of(key);
        if (!errors_.attempt(*value, path, [&] { expect_type(*value, toml::value_t::table); })) {
            return;
        }
        Section section(errors_, *value, path);
        read_body(section);
        section.report_unknown_keys();
    }

    // Reads each table of the array of tables `key` ([[service]], ...) with `read_item`.
    // At least one is required.
    template <typename ReadItem>
    void required_tables(std::string_view key, ReadItem read_item) {
        const Value* value = find(key);
        const std::string path = path_of(key);
        const std::string header = header_name(path);
        if (value == nullptr) {
            error(key, fmt::format("missing required key; add at least one [[{}]]", header));
            return;
        }
        if (!value->is_array()) {
            errors_.add(*value, path,
                        fmt::format("expected an array of tables ([[{}]]), got {}", header,
                                    type_name(value->type())));
            return;
        }
        const auto& items = value->as_array();
        if (items.empty()) {
            error(key, fmt::format("empty {} list; add at least one [[{}]]", key, header));
        }
        for (std::size_t i = 0; i < items.size(); ++i) {
            const std::string item_path = fmt::format("{}[{}]", path, i);
            if (!errors_.attempt(items[i], item_path,
                                 [&] { expect_type(items[i], toml::value_t::table); })) {
                continue;
            }
            Section section(errors_, items[i], item_path);
            read_item(section);
            section.report_unknown_keys();
        }
    }

    void report_unknown_keys() {
        for (const auto& [key, value] : table_.as_table()) {
            if (known_.contains(key)) continue;
            errors_.add(value, path_of(key), unknown_key_message(key));
        }
    }

private:
    std::string unknown_key_message(std::string_view key) const {
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
        if (nearest != nullptr &&
            nearest_distance <= std::max<std::size_t>(1, nearest->size() / 3)) {
            return fmt::format("unknown key; did you mean '{}'?", *nearest);
        }
        return fmt::format("unknown key; valid keys here: {}", fmt::join(known_, ", "));
    }

    Errors& errors_;
    const Value& table_;
    std::string path_;
    std::set<std::string, std::less<>> known_;
};

// Records that `owner` uses `value`; reports `key` of `section` when another owner has it.
using Owners = std::map<std::string, std::string>;
void claim(Owners& owners, const std::string& value, std::string_view what, Section& section,
           std::string_view key, const std::string& owner) {
    const auto [it, inserted] = owners.emplace(value, owner);
    if (!inserted) {
        section.error(
            key, fmt::format("duplicate {} '{}'; already used by {}", what, value, it->second));
    }
}

void read_log(Section& section, LogConfig& log) {
    section.read("level", log.level, one_of(log_levels));
    section.read("access_log", log.access_log, to_bool);
}

void read_admin(Section& section, AdminConfig& admin) {
    section.read("listen", admin.listen, to_address);
    section.read("token", admin.token, to_bearer_token);
}

void read_runtime(Section& section, RuntimeConfig& runtime) {
    section.read("workers", runtime.workers, to_workers);
    section.read("max_connections", runtime.max_connections, integer_at_least<std::size_t>(1));
    section.read("shutdown_timeout", runtime.shutdown_timeout, to_duration);
    section.read("splice_pipes", runtime.splice_pipes, integer_at_least<std::size_t>(0));
}

void read_health(Section& section, HealthConfig& health) {
    section.read("enabled", health.enabled, to_bool);
    section.read("path", health.path, to_http_path);
    const Outcome interval = section.read("interval", health.interval, to_positive_duration);
    const Outcome timeout = section.read("timeout", health.timeout, to_positive_duration);
    section.read("rise", health.rise, integer_at_least<int>(1));
    section.read("fall", health.fall, integer_at_least<int>(1));
    std::pair<int, int> expect{health.expect_status_min, health.expect_status_max};
    section.read("expect_status", expect, to_status_range);
    std::tie(health.expect_status_min, health.expect_status_max) = expect;
    section.read("host", health.host, to_name);
    section.read("port", health.port, integer_in_range<int>(1, 65535));
    section.read("all_unhealthy", health.all_unhealthy, one_of(all_unhealthy_choices));
    section.read("send_proxy", health.send_proxy, to_bool);

    // A probe must end before the next one starts. Blame the key the user wrote.
    if (interval == Outcome::invalid || timeout == Outcome::invalid) return;
    if (health.timeout < health.interval) return;
    if (timeout == Outcome::valid) {
        section.error("timeout", fmt::format("must be less than interval ({})",
                                             format_duration(health.interval)));
    } else {
        section.error("interval", fmt::format("must be greater than timeout ({}, the default)",
                                              format_duration(health.timeout)));
    }
}

void read_passive(Section& section, PassiveConfig& passive) {
    section.read("enabled", passive.enabled, to_bool);
    section.read("max_failures", passive.max_failures, integer_at_least<int>(1));
    section.read("window", passive.window, to_positive_duration);
    section.read("cooldown", passive.cooldown, to_positive_duration);
}

BackendConfig read_backend(Section& section, const ServiceConfig& service) {
    BackendConfig backend;
    backend.send_proxy = service.send_proxy;
    section.read("send_proxy", backend.send_proxy, one_of(send_proxy_choices));
    section.read("address", backend.address, to_backend_address, Need::required);
    if (section.read("name", backend.name, to_name) == Outcome::absent) {
        backend.name = backend.address.text;
    }
    section.read("weight", backend.weight, integer_at_least<int>(1));
    return backend;
}

ServiceConfig read_service(Section& section) {
    ServiceConfig service;
    section.read("name", service.name, to_name, Need::required);
    section.read("listen", service.listen, to_address, Need::required);
    section.read("strategy", service.strategy, one_of(strategy_choices));
    section.read("connect_timeout", service.connect_timeout, to_positive_duration);
    section.read("idle_timeout", service.idle_timeout, to_positive_duration);
    section.read("retries", service.retries, integer_at_least<int>(0));
    section.read("on_failure", service.on_failure, one_of(on_failure_choices));
    section.read("send_proxy", service.send_proxy, one_of(send_proxy_choices));
    section.read("accept_proxy", service.accept_proxy, to_bool);
    const Outcome trusted = section.read_list("proxy_trusted", service.proxy_trusted, to_cidr);
    if (trusted != Outcome::absent && !service.accept_proxy) {
        section.error("proxy_trusted", "needs accept_proxy = true");
    }
    section.read("proxy_timeout", service.proxy_timeout, to_positive_duration);
    if (section.find("proxy_timeout") != nullptr && !service.accept_proxy) {
        section.error("proxy_timeout", "needs accept_proxy = true");
    }

    Owners backend_names;
    section.required_tables("backend", [&](Section& item) {
        BackendConfig backend = read_backend(item, service);
        if (!backend.name.empty()) {
            // A defaulted name is the address: blame the key the user wrote.
            const std::string_view key = item.find("name") != nullptr ? "name" : "address";
            claim(backend_names, backend.name, "backend name", item, key, item.path());
        }
        service.backends.push_back(std::move(backend));
    });
    // After the backends, whose send_proxy health.send_proxy depends on.
    section.table("health", [&](Section& health) {
        read_health(health, service.health);
        const bool any_send_proxy =
            std::any_of(service.backends.begin(), service.backends.end(),
                        [](const BackendConfig& backend) { return backend.send_proxy; });
        if (service.health.send_proxy && !any_send_proxy) {
            health.error("send_proxy", "needs send_proxy on the service or a backend");
        }
    });
    section.table("passive", [&](Section& passive) { read_passive(passive, service.passive); });
    return service;
}

void read_config(Section& root, Config& config) {
    root.table("log", [&](Section& section) { read_log(section, config.log); });
    root.table("admin", [&](Section& section) { read_admin(section, config.admin); });
    root.table("runtime", [&](Section& section) { read_runtime(section, config.runtime); });

    // Listen addresses compared in numeric form, so "localhost:80" meets "127.0.0.1:80".
    // Port 0 asks for any free port and never collides.
    Owners listeners;
    if (config.admin.listen && config.admin.listen->port() != 0) {
        listeners.emplace(config.admin.listen->numeric(), "admin.listen");
    }
    Owners service_names;
    root.required_tables("service", [&](Section& section) {
        ServiceConfig service = read_service(section);
        if (!service.name.empty()) {
            claim(service_names, service.name, "service name", section, "name", section.path());
        }
        if (service.listen.family() != AF_UNSPEC && service.listen.port() != 0) {
            claim(listeners, service.listen.numeric(), "listen address", section, "listen",
                  section.path());
        }
        config.services.push_back(std::move(service));
    });
}

// The whole file; ConfigError "FILE: cannot read: REASON" when that fails.
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

// ---------------------------------------------------------------------------------------
// Writing TOML

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string toml_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                    fmt::format_to(std::back_inserter(out), "\\u{:04X}", static_cast<int>(c));
                } else {
                    out += c;
                }
        }
    }
    out += '"';
    return out;
}

std::string toml_string(Duration duration) {
    return toml_string(format_duration(duration));
}

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

}  // namespace

std::string_view to_string(OnFailure v) {
    return name_of(on_failure_choices, v);
}
std::string_view to_string(AllUnhealthy v) {
    return name_of(all_unhealthy_choices, v);
}
std::string_view to_string(StrategyKind v) {
    return name_of(strategy_choices, v);
}
std::string_view to_string(std::optional<ProxyVersion> v) {
    return name_of(send_proxy_choices, v);
}

ConfigError::ConfigError(std::vector<std::string> errors)
    : std::runtime_error(fmt::format("{}", fmt::join(errors, "\n"))), errors_(std::move(errors)) {}

Config load_config_file(const std::string& path) {
    return load_config_text(read_file(path), path);
}

Config load_config_text(std::string_view text, const std::string& source_name) {
    Value root;
    try {
        std::istringstream stream{std::string(text)};
        root = toml::parse<toml::discard_comments, std::map, std::vector>(stream, source_name);
    } catch (const toml::exception& error) {
        // toml11's message already names the file and shows the offending line.
        throw ConfigError({error.what()});
    }

    Errors errors;
    Config config;
    config.source = source_name;
    Section section(errors, root, "");
    read_config(section, config);
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

std::string to_toml(const Config& config) {
    std::string out = "# Effective fulcrum configuration, every default filled in.\n\n";
    auto line = [&out](std::string_view key, std::string_view value) {
        fmt::format_to(std::back_inserter(out), "{} = {}\n", key, value);
    };

    out += "[log]\n";
    line("level", toml_string(config.log.level));
    line("access_log", fmt::format("{}", config.log.access_log));

    out += "\n[admin]\n";
    if (config.admin.listen) {
        line("listen", toml_string(config.admin.listen->text));
        if (!config.admin.token.empty()) line("token", toml_string(config.admin.token));
    } else {
        out += "# listen is not set: the admin endpoint is off.\n";
    }

    out += "\n[runtime]\n";
    line("workers", config.runtime.workers == 0 ? toml_string("auto")
                                                : std::to_string(config.runtime.workers));
    line("max_connections", std::to_string(config.runtime.max_connections));
    line("shutdown_timeout", toml_string(config.runtime.shutdown_timeout));
    line("splice_pipes", std::to_string(config.runtime.splice_pipes));

    for (const ServiceConfig& service : config.services) {
        out += "\n[[service]]\n";
        line("name", toml_string(service.name));
        line("listen", toml_string(service.listen.text));
        line("strategy", toml_string(to_string(service.strategy)));
        line("connect_timeout", toml_string(service.connect_timeout));
        line("idle_timeout", toml_string(service.idle_timeout));
        line("retries", std::to_string(service.retries));
        line("on_failure", toml_string(to_string(service.on_failure)));
        line("send_proxy", toml_string(to_string(service.send_proxy)));
        line("accept_proxy", fmt::format("{}", service.accept_proxy));
        if (service.accept_proxy) {
            std::vector<std::string> trusted;
            for (const Cidr& cidr : service.proxy_trusted)
                trusted.push_back(toml_string(cidr.text));
            line("proxy_trusted", fmt::format("[{}]", fmt::join(trusted, ", ")));
            line("proxy_timeout", toml_string(service.proxy_timeout));
        }

        const HealthConfig& health = service.health;
        out += "\n[service.health]\n";
        line("enabled", fmt::format("{}", health.enabled));
        line("path", toml_string(health.path));
        line("interval", toml_string(health.interval));
        line("timeout", toml_string(health.timeout));
        line("rise", std::to_string(health.rise));
        line("fall", std::to_string(health.fall));
        line("expect_status",
             toml_string(fmt::format("{}-{}", health.expect_status_min, health.expect_status_max)));
        if (!health.host.empty()) line("host", toml_string(health.host));
        if (health.port != 0) line("port", std::to_string(health.port));
        line("all_unhealthy", toml_string(to_string(health.all_unhealthy)));
        line("send_proxy", fmt::format("{}", health.send_proxy));

        const PassiveConfig& passive = service.passive;
        out += "\n[service.passive]\n";
        line("enabled", fmt::format("{}", passive.enabled));
        line("max_failures", std::to_string(passive.max_failures));
        line("window", toml_string(passive.window));
        line("cooldown", toml_string(passive.cooldown));

        for (const BackendConfig& backend : service.backends) {
            out += "\n[[service.backend]]\n";
            line("name", toml_string(backend.name));
            line("address", toml_string(backend.address.text));
            line("weight", std::to_string(backend.weight));
            line("send_proxy", toml_string(to_string(backend.send_proxy)));
        }
    }
    return out;
}

}  // namespace fulcrum
