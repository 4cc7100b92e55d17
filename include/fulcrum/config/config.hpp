#pragma once
// The configuration model. A TOML file is parsed into these plain records and
// validated in full before anything runs; the result is immutable and shared.
// Every error names file:line:column and the key path, e.g.
//   fulcrum.toml:12:3: service[0].backend[1].weight: must be at least 1

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fulcrum/config/address.hpp"
#include "fulcrum/config/cidr.hpp"
#include "fulcrum/config/duration.hpp"
#include "fulcrum/config/rate.hpp"
#include "fulcrum/proto/proxy_protocol.hpp"

namespace fulcrum {

enum class OnFailure { close, reset, http_502 };
inline constexpr std::size_t on_failure_count = 3;  // values of OnFailure, for tables by action
enum class StrategyKind { round_robin, least_connections, random_two, source_hash };

std::string_view to_string(OnFailure v);
std::string_view to_string(StrategyKind v);
std::string_view to_string(std::optional<ProxyVersion> v);  // "off", "v1", "v2"

// How log lines are written: text for people, one JSON object per line for collectors.
enum class LogFormat { text, json };
// Where they go; journal needs libsystemd (it is off in a build without it).
enum class LogTarget { stdout_stream, stderr_stream, journal };
std::string_view to_string(LogFormat v);
std::string_view to_string(LogTarget v);

struct LogConfig {
    std::string level = "info";  // trace, debug, info, warn, error, critical, off
    bool access_log = true;
    LogFormat format = LogFormat::text;
    LogTarget target = LogTarget::stderr_stream;

    bool operator==(const LogConfig&) const = default;
};

struct AdminConfig {
    std::optional<Address> listen;  // off unless set
    std::string token;              // when set, requests need "Authorization: Bearer <token>"
    bool healthz_public = false;    // /healthz answers without the token (load balancers' probes)

    bool operator==(const AdminConfig&) const = default;
};

struct RuntimeConfig {
    unsigned workers = 0;  // 0 = "auto": one per CPU
    std::size_t max_connections = 10000;
    Duration shutdown_timeout = std::chrono::seconds(30);
    // On SIGTERM, how long the listeners stay open while /healthz already answers 503, so
    // that the tier in front routes away before connections are refused.
    Duration shutdown_grace{0};
    // Pipes for zero-copy bulk transfers (splice), across all workers; 0 turns splice off.
    std::size_t splice_pipes = 1024;

    bool operator==(const RuntimeConfig&) const = default;
};

// What a service does when active checks have every backend down.
enum class AllUnhealthy {
    refuse,     // no backend is eligible: on_failure applies
    fail_open,  // spread over all backends as if they were up: better than certain failure
};
std::string_view to_string(AllUnhealthy v);

// What an active check speaks: HTTP on the probe threads, the rest on the main loop.
enum class CheckType { http, tcp, send_expect, redis, postgres, mysql };
std::string_view to_string(CheckType v);

// The longest send-expect `expect`: a check reads a few KiB of a reply at most.
inline constexpr std::size_t max_expect_bytes = 1024;

struct HealthConfig {
    bool enabled = true;
    CheckType type = CheckType::http;
    std::string path = "/health";
    Duration interval = std::chrono::seconds(2);
    Duration timeout = std::chrono::seconds(1);
    int rise = 2;
    int fall = 3;
    int expect_status_min = 200;  // a probe passes with a status in [min, max]
    int expect_status_max = 399;
    std::string host;  // Host header; empty: the backend's address
    int port = 0;      // probe port; 0: the backend's own port
    AllUnhealthy all_unhealthy = AllUnhealthy::refuse;
    // Probes start with a PROXY header (v1 UNKNOWN, v2 LOCAL) to backends with send_proxy
    // set, for backends that require one on every connection.
    bool send_proxy = false;
    // send-expect: bytes written once connected, and what the reply must start with;
    // either may be empty (nothing sent; any reply, or none, passes).
    std::string send;
    std::string expect;  // at most max_expect_bytes

    bool operator==(const HealthConfig&) const = default;
};

// Connect failures seen while proxying: `max_failures` within `window` take a backend
// out for `cooldown` (or, with active checks on, until they see it healthy again).
struct PassiveConfig {
    bool enabled = true;
    int max_failures = 3;
    Duration window = std::chrono::seconds(10);
    Duration cooldown = std::chrono::seconds(30);

    bool operator==(const PassiveConfig&) const = default;
};

// Where a backend comes from: [[service.backend]] or [service.discovery].
enum class BackendSource { configured, dns, etcd };
std::string_view to_string(BackendSource v);  // "static", "dns", "etcd"

struct BackendConfig {
    std::string name;  // defaults to the address text
    Address address;
    int weight = 1;
    // The PROXY header written before the client's bytes: the backend's own setting, else
    // the service's; nullopt: none.
    std::optional<ProxyVersion> send_proxy;
    // At most this many sessions at once, across workers; 0: no limit. A full backend is
    // not picked; when every routable one is full, connections wait in the service's queue.
    int max_connections = 0;
    // Used only while no other (primary) backend is routable.
    bool backup = false;
    BackendSource source = BackendSource::configured;
    // Its etcd value says "drain": no new connections, wherever the value is read. Kept
    // apart from the admin endpoint's drain, so that neither undoes the other.
    bool drain = false;

    bool operator==(const BackendConfig&) const = default;
};

// Admission limits of a service, checked before any backend is touched. A client's
// "source" is its address, IPv6 clients by /64; behind a trusted PROXY header, the
// address the header carries.
struct LimitsConfig {
    std::size_t max_connections_per_source = 0;  // open at once; 0: no limit
    std::optional<Rate> connection_rate;         // new connections, the whole service
    std::optional<Rate> connection_rate_per_source;

    bool per_source() const { return max_connections_per_source > 0 || connection_rate_per_source; }
    bool operator==(const LimitsConfig&) const = default;
};

enum class DiscoveryType {
    dns_a,    // the A and AAAA records of `name`, on `port`
    dns_srv,  // the SRV records of `name`, each target on its own port
    etcd,     // the keys directly under `prefix` in etcd, watched
};
std::string_view to_string(DiscoveryType v);

// The shortest interval and min_ttl: re-resolving more often only loads the resolvers.
inline constexpr Duration min_discovery_interval = std::chrono::milliseconds(100);

// Backends found in DNS and re-resolved, or watched in etcd, while the service runs
// ([service.discovery]).
struct DiscoveryConfig {
    DiscoveryType type = DiscoveryType::dns_a;
    std::vector<std::string> endpoints;  // etcd: "http://host:port", the next one on failure
    std::string prefix;                  // etcd: ends with "/"
    std::string name;                    // the record resolved
    int port = 0;                        // dns-a: the traffic port (SRV answers carry their own)
    std::vector<Address> resolvers;      // numeric; empty: the nameservers of /etc/resolv.conf
    Duration interval = std::chrono::seconds(5);  // at least this often; a shorter TTL wins
    Duration min_ttl = std::chrono::seconds(1);   // a TTL below this counts as this
    // On resolver errors (timeout, SERVFAIL, NXDOMAIN) the last good answer is kept this
    // long, counted from the first error after it.
    Duration hold = std::chrono::minutes(5);
    // For a query, its retry included; etcd: for connecting and for each request but
    // the watch's stream.
    Duration timeout = std::chrono::seconds(2);

    bool operator==(const DiscoveryConfig&) const = default;
};

struct ServiceConfig {
    std::string name;
    Address listen;
    StrategyKind strategy = StrategyKind::round_robin;
    Duration connect_timeout = std::chrono::seconds(2);
    Duration idle_timeout = std::chrono::minutes(5);
    int retries = 2;
    OnFailure on_failure = OnFailure::close;
    std::optional<ProxyVersion> send_proxy;  // the backends' default
    // Clients arrive through another balancer that starts each connection with a PROXY
    // header; the client address it carries is the one fulcrum uses.
    bool accept_proxy = false;
    std::vector<Cidr> proxy_trusted;  // peers allowed to send the header; empty: any
    Duration proxy_timeout = std::chrono::seconds(5);  // for the whole header to arrive
    // How long a connection may wait for a backend slot when every routable backend is at
    // its max_connections; 0: no waiting. At most queue_max wait at once.
    Duration queue_timeout = std::chrono::seconds(2);
    std::size_t queue_max = 1000;
    // Sessions on a drained or removed backend are closed this long after it left.
    std::optional<Duration> drain_timeout;
    // A backend that turns routable ramps its weight from ~0 to full over this; 0: off.
    Duration slow_start = Duration::zero();
    // Routing by the TLS ClientHello's server name (SNI): the names this service takes on
    // its listen address, canonical (normalize_server_name_pattern); empty: none. Several
    // services share a listen address only if each has some.
    std::vector<std::string> server_names;
    // Of the whole listen address, the same on each of its services (the configuration
    // copies the one set to all): how long the ClientHello may take, and whether a
    // client that does not begin with TLS is closed (true) or goes to "*".
    Duration preread_timeout = std::chrono::seconds(5);
    bool sni_require_tls = true;
    LimitsConfig limits;
    HealthConfig health;
    PassiveConfig passive;
    // Set: more backends come from DNS or etcd, and [[service.backend]] becomes optional.
    std::optional<DiscoveryConfig> discovery;
    // As configured, or, in the running state of a service with discovery, the configured
    // ones followed by those discovered.
    std::vector<BackendConfig> backends;

    bool operator==(const ServiceConfig&) const = default;
};

struct Config {
    std::string source;  // file name, or "<default>"
    LogConfig log;
    AdminConfig admin;
    RuntimeConfig runtime;
    std::vector<ServiceConfig> services;

    bool operator==(const Config&) const = default;
};

// All validation errors of one file, each a complete "file:line:col: key: message" line.
class ConfigError : public std::runtime_error {
public:
    explicit ConfigError(std::vector<std::string> errors);
    const std::vector<std::string>& errors() const { return errors_; }

private:
    std::vector<std::string> errors_;
};

// Throws ConfigError (TOML syntax errors included) or, for an unreadable file, ConfigError
// with one line naming the file and the OS error.
Config load_config_file(const std::string& path);
Config load_config_text(std::string_view text, const std::string& source_name);

// The embedded default: listen 0.0.0.0:8080, backends 127.0.0.1:3001 and :3002,
// round-robin, GET /health every 2s, on_failure = "http-502".
Config default_config();
std::string_view default_config_text();

// The effective configuration, every default filled in, as TOML that loads back.
std::string to_toml(const Config& config);

}  // namespace fulcrum
