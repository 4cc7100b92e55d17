#include "fulcrum/discovery/dns_discovery.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "fulcrum/discovery/dns_resolver.hpp"
#include "fulcrum/discovery/srv_mapping.hpp"
#include "fulcrum/lb/backend.hpp"

namespace fulcrum {
namespace {

double unix_now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The address a backend of a target with several gets: IPv4 first, then the lowest, so
// that the choice does not move with the order of the answer.
std::string preferred_ip(std::vector<std::string> ips) {
    std::ranges::sort(ips, [](const std::string& a, const std::string& b) {
        const bool a_v6 = a.find(':') != std::string::npos;
        const bool b_v6 = b.find(':') != std::string::npos;
        return a_v6 != b_v6 ? !a_v6 : a < b;
    });
    return ips.front();
}

// One service's discovery: a resolution, then a timer to the next one.
class DnsWatch final : public DiscoveryWatch {
public:
    explicit DnsWatch(Setup setup)
        : DiscoveryWatch(std::move(setup)),
          resolver(DnsResolver::open(loop(), discovery().resolvers, discovery().timeout)) {
        if (const int rc = uv_timer_init(loop(), &refresh); rc < 0) {
            throw std::runtime_error(fmt::format("uv_timer_init: {}", uv_strerror(rc)));
        }
        refresh.data = this;
    }

    void close() override {
        resolver.reset();  // its queries end without calling back
        uv_close(reinterpret_cast<uv_handle_t*>(&refresh),
                 [](uv_handle_t* handle) { delete static_cast<DnsWatch*>(handle->data); });
    }

    void schedule(Duration delay) {
        const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, delay.count()));
        if (const int rc = uv_timer_start(&refresh, on_refresh, ms, 0); rc < 0) {
            spdlog::error("{}: uv_timer_start: {}; discovery stopped", label(), uv_strerror(rc));
        }
    }

private:
    DnsResolver::Ptr resolver;
    uv_timer_t refresh{};
    // When the first resolver error after the last good answer happened; hold counts from
    // then.
    std::optional<std::int64_t> first_error_ms;
    // After a resolver error the next try comes sooner than `interval`: from min_ttl,
    // doubling with each error, so that a resolver back after a restart is seen at once.
    Duration error_retry{0};

    static void on_refresh(uv_timer_t* timer) { static_cast<DnsWatch*>(timer->data)->resolve(); }

    void resolve() {
        if (discovery().type == DiscoveryType::dns_a) {
            resolver->resolve_addresses(
                discovery().name, [this](ResolutionResult result, AddressAnswer answer) {
                    std::vector<BackendConfig> found;
                    if (result == ResolutionResult::ok) {
                        found = backends_from_addresses(answer.ips, discovery().port, service());
                    }
                    finish(result, std::move(found), answer.ttl);
                });
            return;
        }
        resolver->resolve_srv(discovery().name, [this](ResolutionResult result, SrvAnswer answer) {
            if (result != ResolutionResult::ok) {
                finish(result, {}, 0);
                return;
            }
            resolve_targets(std::move(answer));
        });
    }

    // The addresses of every SRV target, all at once; the answer is complete when the
    // last one is in.
    void resolve_targets(SrvAnswer answer) {
        struct Round {
            SrvAnswer answer;
            std::size_t pending = 0;
            ResolutionResult error = ResolutionResult::ok;
        };
        // "." as a target: the service is decidedly not available there (RFC 2782).
        std::erase_if(answer.records,
                      [](const SrvTarget& r) { return r.target.empty() || r.target == "."; });
        if (answer.records.empty()) {
            finish(ResolutionResult::empty, {}, 0);
            return;
        }
        auto round = std::make_shared<Round>();
        round->pending = answer.records.size();
        round->answer = std::move(answer);
        for (std::size_t i = 0; i < round->answer.records.size(); ++i) {
            resolver->resolve_addresses(
                round->answer.records[i].target,
                [this, round, i](ResolutionResult result, AddressAnswer addresses) {
                    SrvAnswer& srv = round->answer;
                    if (result == ResolutionResult::ok) {
                        srv.records[i].ip = preferred_ip(std::move(addresses.ips));
                        srv.ttl = std::min(srv.ttl, addresses.ttl);
                    } else if (is_resolver_error(result)) {
                        spdlog::debug("{}: target {}: {}", label(), srv.records[i].target,
                                      to_string(result));
                        round->error = result;
                    }  // a target without addresses is left out
                    if (--round->pending > 0) return;
                    if (round->error != ResolutionResult::ok) {
                        finish(round->error, {}, 0);
                        return;
                    }
                    std::erase_if(srv.records, [](const SrvTarget& r) { return r.ip.empty(); });
                    std::vector<BackendConfig> found = backends_from_srv(srv.records, service());
                    const ResolutionResult outcome =
                        found.empty() ? ResolutionResult::empty : ResolutionResult::ok;
                    finish(outcome, std::move(found), srv.ttl);
                });
        }
    }

    // Applies one resolution's outcome and schedules the next.
    void finish(ResolutionResult result, std::vector<BackendConfig> found, std::uint32_t ttl) {
        stats()->record(result, unix_now_seconds());
        const std::int64_t now_ms = steady_now_ms();
        const DiscoveryConfig& discovery = this->discovery();
        Duration next = discovery.interval;
        std::optional<std::vector<BackendConfig>> replacement;
        if (!is_resolver_error(result)) {
            if (first_error_ms) spdlog::info("{}: resolves again", label());
            first_error_ms.reset();
            error_retry = Duration::zero();
            if (result == ResolutionResult::ok) {
                next = std::clamp<Duration>(std::chrono::seconds(ttl), discovery.min_ttl,
                                            discovery.interval);
            }
            replacement = std::move(found);
        } else {
            error_retry = error_retry.count() == 0 ? discovery.min_ttl
                                                   : std::min(error_retry * 2, discovery.interval);
            next = error_retry;
            if (!first_error_ms) {
                first_error_ms = now_ms;
                spdlog::warn("{}: resolution failed: {}; keeping its {} backend{} for up to {}",
                             label(), to_string(result), current().size(),
                             current().size() == 1 ? "" : "s", format_duration(discovery.hold));
            } else {
                spdlog::debug("{}: resolution failed: {}", label(), to_string(result));
            }
            const Duration held(now_ms - *first_error_ms);
            if (held >= discovery.hold) {
                if (!current().empty()) {
                    spdlog::warn("{}: failing for {}, longer than hold: its backends go", label(),
                                 format_duration(held));
                }
                replacement.emplace();
            } else {
                next = std::min(next, discovery.hold - held);  // the hold ends on time
            }
        }
        if (replacement) replace(std::move(*replacement));
        schedule(next);
    }
};

}  // namespace

DiscoveryWatch::Ptr open_dns_watch(DiscoveryWatch::Setup setup) {
    auto* watch = new DnsWatch(std::move(setup));
    watch->schedule(Duration::zero());
    return DiscoveryWatch::Ptr(watch);
}

}  // namespace fulcrum
