#include <algorithm>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "fulcrum/config/config.hpp"

namespace fulcrum {
namespace {

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

// The key and value for bytes: `key` and a TOML string when they are text, else `key`_hex
// and their hex digits.
std::pair<std::string, std::string> bytes_entry(std::string_view key, std::string_view bytes) {
    const bool text = std::none_of(bytes.begin(), bytes.end(), [](char c) {
        return c == 0 || static_cast<unsigned char>(c) >= 0x80;
    });
    if (text) return {std::string(key), toml_string(bytes)};
    std::string hex;
    for (const char c : bytes) {
        fmt::format_to(std::back_inserter(hex), "{:02x}", static_cast<unsigned char>(c));
    }
    return {fmt::format("{}_hex", key), toml_string(hex)};
}

std::string toml_string(Duration duration) {
    return toml_string(format_duration(duration));
}

}  // namespace

std::string to_toml(const Config& config) {
    std::string out = "# Effective fulcrum configuration, every default filled in.\n\n";
    auto line = [&out](std::string_view key, std::string_view value) {
        fmt::format_to(std::back_inserter(out), "{} = {}\n", key, value);
    };

    out += "[log]\n";
    line("level", toml_string(config.log.level));
    line("access_log", fmt::format("{}", config.log.access_log));
    line("format", toml_string(to_string(config.log.format)));
    line("target", toml_string(to_string(config.log.target)));

    out += "\n[admin]\n";
    if (config.admin.listen) {
        line("listen", toml_string(config.admin.listen->text));
        if (!config.admin.token.empty()) line("token", toml_string(config.admin.token));
        line("healthz_public", fmt::format("{}", config.admin.healthz_public));
    } else {
        out += "# listen is not set: the admin endpoint is off.\n";
    }

    out += "\n[runtime]\n";
    line("workers", config.runtime.workers == 0 ? toml_string("auto")
                                                : std::to_string(config.runtime.workers));
    line("max_connections", std::to_string(config.runtime.max_connections));
    line("shutdown_timeout", toml_string(config.runtime.shutdown_timeout));
    line("shutdown_grace", toml_string(config.runtime.shutdown_grace));
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
        if (!service.server_names.empty()) {
            std::vector<std::string> names;
            for (const std::string& name : service.server_names) names.push_back(toml_string(name));
            line("server_names", fmt::format("[{}]", fmt::join(names, ", ")));
            line("preread_timeout", toml_string(service.preread_timeout));
            line("sni_require_tls", fmt::format("{}", service.sni_require_tls));
        }
        line("queue_timeout", toml_string(service.queue_timeout));
        line("queue_max", std::to_string(service.queue_max));
        if (service.drain_timeout) line("drain_timeout", toml_string(*service.drain_timeout));
        line("slow_start", toml_string(service.slow_start));

        const LimitsConfig& limits = service.limits;
        out += "\n[service.limits]\n";
        if (limits.max_connections_per_source > 0) {
            line("max_connections_per_source", std::to_string(limits.max_connections_per_source));
        }
        if (limits.connection_rate) {
            line("connection_rate", toml_string(format_rate(*limits.connection_rate)));
        }
        if (limits.connection_rate_per_source) {
            line("connection_rate_per_source",
                 toml_string(format_rate(*limits.connection_rate_per_source)));
        }

        const HealthConfig& health = service.health;
        out += "\n[service.health]\n";
        line("enabled", fmt::format("{}", health.enabled));
        line("type", toml_string(to_string(health.type)));
        if (health.type == CheckType::http) {
            line("path", toml_string(health.path));
            line("expect_status", toml_string(fmt::format("{}-{}", health.expect_status_min,
                                                          health.expect_status_max)));
            if (!health.host.empty()) line("host", toml_string(health.host));
        }
        if (health.type == CheckType::send_expect) {
            auto bytes_line = [&line](std::string_view key, std::string_view bytes) {
                if (bytes.empty()) return;
                const auto [entry_key, value] = bytes_entry(key, bytes);
                line(entry_key, value);
            };
            bytes_line("send", health.send);
            bytes_line("expect", health.expect);
        }
        line("interval", toml_string(health.interval));
        line("timeout", toml_string(health.timeout));
        line("rise", std::to_string(health.rise));
        line("fall", std::to_string(health.fall));
        if (health.port != 0) line("port", std::to_string(health.port));
        line("all_unhealthy", toml_string(to_string(health.all_unhealthy)));
        line("send_proxy", fmt::format("{}", health.send_proxy));

        const PassiveConfig& passive = service.passive;
        out += "\n[service.passive]\n";
        line("enabled", fmt::format("{}", passive.enabled));
        line("max_failures", std::to_string(passive.max_failures));
        line("window", toml_string(passive.window));
        line("cooldown", toml_string(passive.cooldown));

        if (const auto& discovery = service.discovery) {
            out += "\n[service.discovery]\n";
            line("type", toml_string(to_string(discovery->type)));
            if (discovery->type == DiscoveryType::etcd) {
                std::vector<std::string> endpoints;
                for (const std::string& endpoint : discovery->endpoints) {
                    endpoints.push_back(toml_string(endpoint));
                }
                line("endpoints", fmt::format("[{}]", fmt::join(endpoints, ", ")));
                line("prefix", toml_string(discovery->prefix));
            } else {
                line("name", toml_string(discovery->name));
                if (discovery->type == DiscoveryType::dns_a) {
                    line("port", std::to_string(discovery->port));
                }
                if (discovery->resolvers.empty()) {
                    out += "# resolvers is not set: the nameservers of /etc/resolv.conf.\n";
                } else {
                    std::vector<std::string> resolvers;
                    for (const Address& resolver : discovery->resolvers) {
                        resolvers.push_back(toml_string(resolver.text));
                    }
                    line("resolvers", fmt::format("[{}]", fmt::join(resolvers, ", ")));
                }
                line("interval", toml_string(discovery->interval));
                line("min_ttl", toml_string(discovery->min_ttl));
                line("hold", toml_string(discovery->hold));
            }
            line("timeout", toml_string(discovery->timeout));
        }

        for (const BackendConfig& backend : service.backends) {
            out += "\n[[service.backend]]\n";
            line("name", toml_string(backend.name));
            line("address", toml_string(backend.address.text));
            line("weight", std::to_string(backend.weight));
            line("send_proxy", toml_string(to_string(backend.send_proxy)));
            if (backend.max_connections > 0) {
                line("max_connections", std::to_string(backend.max_connections));
            }
            line("backup", fmt::format("{}", backend.backup));
        }
    }
    return out;
}

}  // namespace fulcrum
