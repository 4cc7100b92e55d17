#include "fulcrum/config/schema.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "fulcrum/proto/server_name.hpp"

namespace fulcrum {
namespace {

using config_reader::expect_type;
using config_reader::Invalid;
using config_reader::Need;
using config_reader::Outcome;
using config_reader::Section;
using config_reader::type_name;
using config_reader::Value;

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

constexpr std::array<Choice<CheckType>, 6> check_type_choices{{
    {"http", CheckType::http},
    {"tcp", CheckType::tcp},
    {"send-expect", CheckType::send_expect},
    {"redis", CheckType::redis},
    {"postgres", CheckType::postgres},
    {"mysql", CheckType::mysql},
}};

constexpr std::array<Choice<DiscoveryType>, 3> discovery_type_choices{{
    {"dns-a", DiscoveryType::dns_a},
    {"dns-srv", DiscoveryType::dns_srv},
    {"etcd", DiscoveryType::etcd},
}};

constexpr std::array<Choice<BackendSource>, 3> backend_source_names{{
    {"static", BackendSource::configured},
    {"dns", BackendSource::dns},
    {"etcd", BackendSource::etcd},
}};

constexpr std::array<Choice<std::optional<ProxyVersion>>, 3> send_proxy_choices{{
    {"off", std::nullopt},
    {"v1", ProxyVersion::v1},
    {"v2", ProxyVersion::v2},
}};

constexpr std::array<Choice<LogFormat>, 2> log_format_choices{{
    {"text", LogFormat::text},
    {"json", LogFormat::json},
}};

constexpr std::array<Choice<LogTarget>, 3> log_target_choices{{
    {"stdout", LogTarget::stdout_stream},
    {"stderr", LogTarget::stderr_stream},
    {"journal", LogTarget::journal},
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

// A nameserver: a numeric IP, with a port (":53" when an IPv4 address has none).
Address to_resolver(const Value& value) {
    std::string text = to_string_value(value);
    if (text.find(':') == std::string::npos) text += ":53";
    Address address;
    try {
        address = parse_address(text);
    } catch (const AddressError& error) {
        throw Invalid(error.what());
    }
    // A host name here would need a resolver to find the resolver.
    if (address.numeric() != text) {
        throw Invalid(
            fmt::format("\"{}\" is not a numeric address; write e.g. \"10.0.0.2:53\" "
                        "or \"[fd00::2]:53\"",
                        to_string_value(value)));
    }
    return address;
}

// An etcd endpoint, "http://host:port": the v3 JSON gateway, without TLS.
std::string to_etcd_endpoint(const Value& value) {
    return parsed_with(value, parse_http_endpoint);
}

std::string to_etcd_prefix(const Value& value) {
    std::string prefix = to_name(value);
    // Without it "/a" would also take the keys of "/ab/".
    if (!prefix.ends_with('/')) throw Invalid("must end with \"/\", e.g. \"/fulcrum/redis/\"");
    return prefix;
}

Duration to_discovery_interval(const Value& value) {
    const Duration duration = to_duration(value);
    if (duration < min_discovery_interval) {
        throw Invalid(fmt::format("must be at least {}", format_duration(min_discovery_interval)));
    }
    return duration;
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

Rate to_rate(const Value& value) {
    const std::string text = to_string_value(value);
    if (const auto rate = parse_rate(text)) return *rate;
    throw Invalid(
        fmt::format("\"{}\" is not a rate; write <count>/s or <count>/m with a count from 1 to "
                    "1000000000, e.g. \"2000/s\"",
                    text));
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

// Bytes written as hex digits, two per byte: "50494e470d0a".
std::string to_hex_bytes(const Value& value) {
    const std::string text = to_string_value(value);
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    const bool hex = text.size() % 2 == 0 &&
                     std::all_of(text.begin(), text.end(), [&](char c) { return digit(c) >= 0; });
    if (!hex) {
        throw Invalid(fmt::format(
            "\"{}\" is not hex; write two hex digits per byte, e.g. \"50494e470d0a\"", text));
    }
    std::string bytes;
    for (std::size_t i = 0; i < text.size(); i += 2) {
        bytes += static_cast<char>(digit(text[i]) * 16 + digit(text[i + 1]));
    }
    return bytes;
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
std::string to_server_name_pattern(const Value& value) {
    const std::string text = to_string_value(value);
    if (std::optional<std::string> pattern = normalize_server_name_pattern(text)) return *pattern;
    throw Invalid(
        fmt::format("\"{}\" is not a server name; write a host name (\"api.example.test\"), "
                    "a wildcard (\"*.example.test\") or \"*\"",
                    text));
}

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
    section.read("format", log.format, one_of(log_format_choices));
    if (section.read("target", log.target, one_of(log_target_choices)) == Outcome::valid &&
        log.target == LogTarget::journal && !FULCRUM_HAVE_SYSTEMD) {
        section.error("target", "this fulcrum was built without libsystemd: no journal");
    }
}

void read_admin(Section& section, AdminConfig& admin) {
    section.read("listen", admin.listen, to_address);
    section.read("token", admin.token, to_bearer_token);
    section.read("healthz_public", admin.healthz_public, to_bool);
}

void read_runtime(Section& section, RuntimeConfig& runtime) {
    section.read("workers", runtime.workers, to_workers);
    section.read("max_connections", runtime.max_connections, integer_at_least<std::size_t>(1));
    section.read("shutdown_timeout", runtime.shutdown_timeout, to_duration);
    section.read("shutdown_grace", runtime.shutdown_grace, to_duration);
    section.read("splice_pipes", runtime.splice_pipes, integer_at_least<std::size_t>(0));
}

// Bytes given either as a TOML string (`key`) or as hex (`key`_hex), not both.
void read_bytes(Section& section, std::string_view key, std::string& out) {
    const std::string hex_key = fmt::format("{}_hex", key);
    const Outcome text = section.read(key, out, to_string_value);
    const Outcome hex = section.read(hex_key, out, to_hex_bytes);
    if (text != Outcome::absent && hex != Outcome::absent) {
        section.error(hex_key, fmt::format("set either {} or {}, not both", key, hex_key));
    }
}

void read_health(Section& section, HealthConfig& health) {
    section.read("enabled", health.enabled, to_bool);
    const Outcome type = section.read("type", health.type, one_of(check_type_choices));
    // Keys of one check type: under another type they are errors, not silently ignored
    // (but under a type that is itself wrong, only that is reported).
    auto applies = [&](CheckType owner, std::initializer_list<std::string_view> keys) {
        if (health.type == owner && type != Outcome::invalid) return true;
        for (const std::string_view key : keys) {
            if (section.find(key) == nullptr || type == Outcome::invalid) continue;
            section.error(key, fmt::format("applies only to type = \"{}\" (type is \"{}\")",
                                           to_string(owner), to_string(health.type)));
        }
        return false;
    };
    if (applies(CheckType::http, {"path", "expect_status", "host"})) {
        section.read("path", health.path, to_http_path);
        std::pair<int, int> expect{health.expect_status_min, health.expect_status_max};
        section.read("expect_status", expect, to_status_range);
        std::tie(health.expect_status_min, health.expect_status_max) = expect;
        section.read("host", health.host, to_name);
    }
    if (applies(CheckType::send_expect, {"send", "send_hex", "expect", "expect_hex"})) {
        read_bytes(section, "send", health.send);
        read_bytes(section, "expect", health.expect);
        if (health.expect.size() > max_expect_bytes) {
            section.error(section.find("expect") != nullptr ? "expect" : "expect_hex",
                          fmt::format("must be at most {} bytes", max_expect_bytes));
        }
    }
    const Outcome interval = section.read("interval", health.interval, to_positive_duration);
    const Outcome timeout = section.read("timeout", health.timeout, to_positive_duration);
    section.read("rise", health.rise, integer_at_least<int>(1));
    section.read("fall", health.fall, integer_at_least<int>(1));
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

void read_limits(Section& section, LimitsConfig& limits) {
    section.read("max_connections_per_source", limits.max_connections_per_source,
                 integer_at_least<std::size_t>(1));
    section.read("connection_rate", limits.connection_rate, to_rate);
    section.read("connection_rate_per_source", limits.connection_rate_per_source, to_rate);
}

void read_passive(Section& section, PassiveConfig& passive) {
    section.read("enabled", passive.enabled, to_bool);
    section.read("max_failures", passive.max_failures, integer_at_least<int>(1));
    section.read("window", passive.window, to_positive_duration);
    section.read("cooldown", passive.cooldown, to_positive_duration);
}

// Keys that belong to the other kind of discovery are errors, not ignored: the file
// would not do what it says.
void reject_keys(Section& section, std::initializer_list<std::string_view> keys,
                 std::string_view applies_to) {
    for (const std::string_view key : keys) {
        if (section.find(key) != nullptr) {
            section.error(key, fmt::format("applies only to {}", applies_to));
        }
    }
}

void read_etcd_discovery(Section& section, DiscoveryConfig& discovery) {
    const Outcome endpoints = section.read_list("endpoints", discovery.endpoints, to_etcd_endpoint);
    if (endpoints == Outcome::absent) {
        section.error("endpoints", "missing required key");
    } else if (endpoints == Outcome::valid && discovery.endpoints.empty()) {
        section.error("endpoints", "must not be empty");
    }
    section.read("prefix", discovery.prefix, to_etcd_prefix, Need::required);
    reject_keys(section, {"name", "port", "resolvers", "interval", "min_ttl", "hold"},
                "type = \"dns-a\" and \"dns-srv\"");
}

void read_discovery(Section& section, DiscoveryConfig& discovery) {
    const Outcome type =
        section.read("type", discovery.type, one_of(discovery_type_choices), Need::required);
    section.read("timeout", discovery.timeout, to_positive_duration);
    if (type == Outcome::valid && discovery.type == DiscoveryType::etcd) {
        read_etcd_discovery(section, discovery);
        return;
    }
    reject_keys(section, {"endpoints", "prefix"}, "type = \"etcd\"");
    section.read("name", discovery.name, to_name, Need::required);
    if (type == Outcome::valid && discovery.type == DiscoveryType::dns_a) {
        section.read("port", discovery.port, integer_in_range<int>(1, 65535), Need::required);
    } else if (type == Outcome::valid && section.find("port") != nullptr) {
        section.error("port", "applies only to type = \"dns-a\" (SRV answers carry the port)");
    }
    if (section.read_list("resolvers", discovery.resolvers, to_resolver) == Outcome::valid &&
        discovery.resolvers.empty()) {
        section.error("resolvers", "must not be empty; leave it out for /etc/resolv.conf's");
    }
    const Outcome interval = section.read("interval", discovery.interval, to_discovery_interval);
    const Outcome min_ttl = section.read("min_ttl", discovery.min_ttl, to_discovery_interval);
    section.read("hold", discovery.hold, to_duration);
    if (interval != Outcome::invalid && min_ttl != Outcome::invalid &&
        discovery.min_ttl > discovery.interval) {
        section.error(
            min_ttl == Outcome::valid ? "min_ttl" : "interval",
            fmt::format("min_ttl ({}) must not be longer than interval ({})",
                        format_duration(discovery.min_ttl), format_duration(discovery.interval)));
    }
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
    section.read("max_connections", backend.max_connections, integer_at_least<int>(1));
    section.read("backup", backend.backup, to_bool);
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

    if (section.read_list("server_names", service.server_names, to_server_name_pattern) ==
        Outcome::valid) {
        if (service.server_names.empty()) section.error("server_names", "must not be empty");
        Owners names;
        for (const std::string& name : service.server_names) {
            claim(names, name, "server name", section, "server_names", "this list");
        }
    }
    for (const std::string_view key : {"preread_timeout", "sni_require_tls"}) {
        if (section.find(key) != nullptr && section.find("server_names") == nullptr) {
            section.error(key, "needs server_names");
        }
    }
    section.read("preread_timeout", service.preread_timeout, to_positive_duration);
    section.read("sni_require_tls", service.sni_require_tls, to_bool);

    section.read("queue_timeout", service.queue_timeout, to_duration);
    section.read("queue_max", service.queue_max, integer_at_least<std::size_t>(1));
    section.read("drain_timeout", service.drain_timeout, to_positive_duration);
    section.read("slow_start", service.slow_start, to_duration);

    // Read before the backends, which are optional when it is there.
    section.table("discovery", [&](Section& discovery) {
        read_discovery(discovery, service.discovery.emplace());
    });
    const Need backends = service.discovery ? Need::optional : Need::required;
    Owners backend_names;
    section.tables("backend", backends, [&](Section& item) {
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
    section.table("limits", [&](Section& limits) { read_limits(limits, service.limits); });
    return service;
}

}  // namespace

std::string_view to_string(OnFailure v) {
    return name_of(on_failure_choices, v);
}
std::string_view to_string(AllUnhealthy v) {
    return name_of(all_unhealthy_choices, v);
}
std::string_view to_string(CheckType v) {
    return name_of(check_type_choices, v);
}
std::string_view to_string(LogFormat v) {
    return name_of(log_format_choices, v);
}
std::string_view to_string(LogTarget v) {
    return name_of(log_target_choices, v);
}
std::string_view to_string(StrategyKind v) {
    return name_of(strategy_choices, v);
}
std::string_view to_string(DiscoveryType v) {
    return name_of(discovery_type_choices, v);
}
std::string_view to_string(BackendSource v) {
    return name_of(backend_source_names, v);
}
std::string_view to_string(std::optional<ProxyVersion> v) {
    return name_of(send_proxy_choices, v);
}

namespace {

// The services of one listen address, as read so far: several only if each routes by
// server name, and then the settings that apply before a service is chosen are one.
struct SharedListen {
    std::vector<std::size_t> services;  // indexes in Config::services
    std::string first;                  // the first service's path, for messages
    Owners server_names;                // claimed by which service
    std::optional<Duration> preread_timeout;
    std::optional<bool> sni_require_tls;
};

// Checks `service` (at `section`) against the services read before it on its address.
void join_listen(SharedListen& shared, const ServiceConfig& service,
                 const std::vector<ServiceConfig>& services, Section& section) {
    if (shared.services.empty()) {
        shared.first = section.path();
    } else {
        const ServiceConfig& first = services[shared.services.front()];
        if (service.server_names.empty() || first.server_names.empty()) {
            section.error("listen", fmt::format("duplicate listen address '{}'; already used by "
                                                "{} (services may share one only if each has "
                                                "server_names)",
                                                service.listen.numeric(), shared.first));
        }
        // Read before the service is known: one value for the whole address.
        auto differs = [&](std::string_view key, bool same) {
            if (!same) {
                section.error(key, fmt::format("must be the same as {}'s: they share listen {}",
                                               shared.first, service.listen.text));
            }
        };
        differs("accept_proxy", service.accept_proxy == first.accept_proxy);
        differs("proxy_trusted", service.proxy_trusted == first.proxy_trusted);
        differs("proxy_timeout", service.proxy_timeout == first.proxy_timeout);
    }
    for (const std::string& name : service.server_names) {
        // A name twice in the service's own list is reported already.
        const auto claimed = shared.server_names.find(name);
        if (claimed != shared.server_names.end() && claimed->second == section.path()) continue;
        claim(shared.server_names, name, "server name", section, "server_names", section.path());
    }
    auto inherit = [&](auto& value, const auto& mine, std::string_view key, auto format) {
        if (section.find(key) == nullptr) return;
        if (value && *value != mine) {
            section.error(key, fmt::format("{} conflicts with {} set on another service of "
                                           "listen {}",
                                           format(mine), format(*value), service.listen.text));
        } else {
            value = mine;
        }
    };
    inherit(shared.preread_timeout, service.preread_timeout, "preread_timeout", format_duration);
    inherit(shared.sni_require_tls, service.sni_require_tls, "sni_require_tls",
            [](bool b) { return b ? "true" : "false"; });
    shared.services.push_back(services.size());
}

}  // namespace

namespace config_schema {

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
    std::map<std::string, SharedListen> shared;  // by numeric listen address
    root.tables("service", Need::required, [&](Section& section) {
        ServiceConfig service = read_service(section);
        if (!service.name.empty()) {
            claim(service_names, service.name, "service name", section, "name", section.path());
        }
        if (service.listen.family() != AF_UNSPEC && service.listen.port() != 0) {
            const std::string address = service.listen.numeric();
            if (const auto admin = listeners.find(address); admin != listeners.end()) {
                section.error("listen", fmt::format("duplicate listen address '{}'; already used "
                                                    "by {}",
                                                    address, admin->second));
            }
            join_listen(shared[address], service, config.services, section);
        }
        config.services.push_back(std::move(service));
    });
    // Every service of an address gets the address's settings, whichever one set them.
    for (const auto& [address, listen] : shared) {
        for (const std::size_t i : listen.services) {
            ServiceConfig& service = config.services[i];
            if (listen.preread_timeout) service.preread_timeout = *listen.preread_timeout;
            if (listen.sni_require_tls) service.sni_require_tls = *listen.sni_require_tls;
        }
    }
}

}  // namespace config_schema
}  // namespace fulcrum
