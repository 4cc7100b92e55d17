// The Prometheus exposition without sockets: sampling sums every worker's counters, the
// text is checked against the strict parser the integration tests use, and that parser
// itself.

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "../support/prometheus_text.hpp"
#include "fulcrum/admin/prometheus.hpp"
#include "fulcrum/lb/service_state.hpp"

using namespace fulcrum;
using namespace std::chrono_literals;
using fulcrum::test::parse_prometheus_text;

namespace {

ServiceState service_with_backends(const std::string& name, std::size_t workers,
                                   bool health_checks) {
    auto config = std::make_shared<ServiceConfig>();
    config->name = name;
    config->health.enabled = health_checks;
    for (const char* backend : {"b0", "b1"}) {
        BackendConfig b;
        b.name = backend;
        config->backends.push_back(b);
    }
    auto pool = std::make_shared<const Pool>(*config, nullptr, workers);
    return {config,
            pool,
            std::make_shared<Balancer>(pool, config->strategy, 1),
            std::make_shared<ServiceCounters>(workers),
            std::make_shared<WaitQueue>(),
            std::make_shared<Admission>(config->limits, nullptr),
            nullptr};
}

}  // namespace

TEST_CASE("counters of every worker are summed when read", "[prometheus]") {
    ServiceState state = service_with_backends("web", 3, true);
    Backend& b0 = *state.pool->members[0].backend;
    b0.traffic[0].connections.add();
    b0.traffic[2].connections.add(2);
    b0.traffic[1].bytes_sent.add(100);
    b0.traffic[2].bytes_sent.add(23);
    b0.traffic[0].bytes_received.add(7);
    b0.traffic[1].connect_failures.add();
    b0.traffic[2].retries.add();
    b0.traffic[0].session_duration.observe(2ms);
    b0.traffic[1].session_duration.observe(2s);
    b0.check_duration.observe(300us);
    b0.active = 4;
    state.pool->members[1].backend->drained = true;
    (*state.counters)[0].accepted.add(3);
    (*state.counters)[2].accepted.add(4);
    (*state.counters)[1].refused.add();
    (*state.counters)[2].no_backend[static_cast<std::size_t>(NoBackend::queue_full)].add(5);
    (*state.counters)[0].ended[static_cast<std::size_t>(SessionEnd::idle_timeout)].add(2);
    (*state.counters)[1].ended[static_cast<std::size_t>(SessionEnd::idle_timeout)].add();
    (*state.counters)[1].sessions.set(6);

    const std::vector<ServiceSample> samples = sample_services({state});
    REQUIRE(samples.size() == 1);
    const ServiceSample& web = samples[0];
    CHECK(web.name == "web");
    CHECK(web.accepted == 7);
    CHECK(web.refused == 1);
    CHECK(web.no_backend == std::array<std::uint64_t, no_backend_count>{0, 0, 0, 5});
    CHECK(web.ended[static_cast<std::size_t>(SessionEnd::idle_timeout)] == 3);
    CHECK(web.sessions == 6);
    REQUIRE(web.backends.size() == 2);
    const BackendSample& s0 = web.backends[0];
    CHECK(s0.connections == 3);
    CHECK(s0.bytes_sent == 123);
    CHECK(s0.bytes_received == 7);
    CHECK(s0.connect_failures == 1);
    CHECK(s0.retries == 1);
    CHECK(s0.active == 4);
    CHECK(s0.healthy);
    CHECK_FALSE(s0.drained);
    CHECK(web.backends[1].drained);
    // 2 ms falls in the le=0.005 bucket (index 1), 2 s in le=2.5 (index 8).
    REQUIRE(s0.session_duration.counts.size() == session_duration_bounds.size() + 1);
    CHECK(s0.session_duration.counts[1] == 1);
    CHECK(s0.session_duration.counts[8] == 1);
    CHECK(s0.session_duration.sum_seconds == Approx(2.002));
    REQUIRE(s0.check_duration.has_value());
    CHECK(s0.check_duration->counts[0] == 1);  // 0.3 ms <= 0.5 ms
}

TEST_CASE("health check durations are shown only for checked services", "[prometheus]") {
    const auto samples = sample_services({service_with_backends("unchecked", 1, false)});
    CHECK_FALSE(samples[0].backends[0].check_duration.has_value());
    const std::string text = render_prometheus({{}, samples, {}});
    CHECK(text.find("fulcrum_backend_health_check_duration_seconds_bucket") == std::string::npos);
    CHECK(text.find("# TYPE fulcrum_backend_health_check_duration_seconds histogram") !=
          std::string::npos);
}

TEST_CASE("a backend's check history: transitions, failures by reason, last change, downtime",
          "[prometheus][health]") {
    using Clock = CheckHistory::Clock;
    const Clock::time_point t0 = Clock::now();
    CheckHistory history;
    CHECK(history.last_change_seconds() ==
          Approx(std::chrono::duration<double>(t0.time_since_epoch()).count()).margin(1));
    CHECK(history.downtime_seconds(t0 + 10s) == 0);

    history.record_failure(CheckFailure::timeout);
    history.record_failure(CheckFailure::timeout);
    history.record_failure(CheckFailure::status);
    history.record_transition(false, t0 + 10s);
    CHECK(history.transitions(false) == 1);
    CHECK(history.transitions(true) == 0);
    CHECK(history.failures(CheckFailure::timeout) == 2);
    CHECK(history.failures(CheckFailure::status) == 1);
    CHECK(history.failures(CheckFailure::reset) == 0);
    CHECK(history.downtime_seconds(t0 + 12500ms) == Approx(2.5));  // the stretch so far
    history.record_transition(true, t0 + 14s);
    CHECK(history.downtime_seconds(t0 + 100s) == Approx(4));  // ended: it stops growing
    history.record_transition(false, t0 + 20s);
    CHECK(history.downtime_seconds(t0 + 21s) == Approx(5));
    CHECK(history.last_change_seconds() ==
          Approx(std::chrono::duration<double>((t0 + 20s).time_since_epoch()).count()));

    // Rendered for checked services only, every reason and both directions.
    std::vector<ServiceState> services{service_with_backends("checked", 1, true),
                                       service_with_backends("unchecked", 1, false)};
    services[0].pool->members[0].backend->check_history.record_failure(CheckFailure::refused);
    services[0].pool->members[0].backend->check_history.record_transition(false, Clock::now());
    const std::string text = render_prometheus({{}, sample_services(services), {}});
    const auto exposition = parse_prometheus_text(text);
    const test::LabelSet b0{{"service", "checked"}, {"backend", "b0"}};
    auto with = [](test::LabelSet labels, const std::string& key, const std::string& value) {
        labels.emplace(key, value);
        return labels;
    };
    CHECK(exposition.value("fulcrum_backend_check_failures_total", with(b0, "reason", "refused")) ==
          1);
    for (const char* reason : {"timeout", "reset", "status", "response", "error"}) {
        CHECK(exposition.value("fulcrum_backend_check_failures_total",
                               with(b0, "reason", reason)) == 0);
    }
    CHECK(exposition.value("fulcrum_backend_check_transitions_total", with(b0, "to", "down")) == 1);
    CHECK(exposition.value("fulcrum_backend_check_transitions_total", with(b0, "to", "up")) == 0);
    CHECK(exposition.value("fulcrum_backend_downtime_seconds_total", b0) >= 0);
    CHECK(exposition.has("fulcrum_backend_last_change_timestamp_seconds", b0));
    CHECK_FALSE(exposition.has("fulcrum_backend_last_change_timestamp_seconds",
                               {{"service", "unchecked"}, {"backend", "b0"}}));
}

TEST_CASE("label values escape backslash, double quote and newline", "[prometheus]") {
    CHECK(escape_label_value("plain") == "plain");
    CHECK(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
}

TEST_CASE("the exposition has HELP and TYPE per family and parses strictly", "[prometheus]") {
    MetricsSample sample;
    sample.process.start_time_seconds = 1'700'000'000.5;
    sample.process.stats.open_fds = 17;
    sample.process.stats.cpu_seconds = 1.25;
    sample.process.workers = 2;
    sample.process.client_connections = 3;
    sample.process.reloads = 4;
    sample.process.reload_failures = 1;
    WorkerCounters splice(2);
    splice[0].bytes.add(1000);
    splice[1].bytes.add(24);
    splice[1].transfers.add(3);
    splice[0].pool_exhausted.add(2);
    splice[0].pipes_in_use.set(5);
    splice[1].pipes_idle.set(6);
    sample_splice(splice, sample.process);
    const std::string odd = "we\"b \\ line\nbreak";
    ServiceState state = service_with_backends(odd, 2, true);
    state.pool->members[0].backend->traffic[1].bytes_received.add(42);
    state.pool->members[0].backend->traffic[0].session_duration.observe(20ms);
    state.pool->members[0].backend->traffic[1].session_duration.observe(20s);
    (*state.counters)[1].sni_routed.add(7);
    sample.services = sample_services({state});
    ListenCounters listen(2);
    listen[0].preread_failures[static_cast<std::size_t>(PrereadFailure::no_match)].add(2);
    listen[1].preread_failures[static_cast<std::size_t>(PrereadFailure::no_match)].add(1);
    sample.listens.push_back(sample_listen("0.0.0.0:443", listen));

    const std::string text = render_prometheus(sample);
    INFO(text);
    CHECK(text.find("# HELP fulcrum_backend_bytes_received_total Bytes read from the backend "
                    "and forwarded to clients.\n"
                    "# TYPE fulcrum_backend_bytes_received_total counter\n"
                    "fulcrum_backend_bytes_received_total{service=\"we\\\"b \\\\ line\\nbreak\","
                    "backend=\"b0\"} 42\n") != std::string::npos);
    CHECK(text.find("process_start_time_seconds 1700000000.5\n") != std::string::npos);
    CHECK(text.find("fulcrum_service_no_backend_total{service=\"we\\\"b \\\\ line\\nbreak\","
                    "reason=\"no_eligible\"} 0\n") != std::string::npos);
    CHECK(text.find("fulcrum_build_info{version=\"") != std::string::npos);

    const auto parsed = parse_prometheus_text(text);
    const fulcrum::test::LabelSet b0{{"service", odd}, {"backend", "b0"}};
    CHECK(parsed.value("fulcrum_backend_bytes_received_total", b0) == 42);
    CHECK(parsed.value("process_open_fds") == 17);
    CHECK(parsed.value("process_cpu_seconds_total") == 1.25);
    CHECK_FALSE(parsed.has("process_max_fds"));  // not read: not shown
    CHECK(parsed.value("fulcrum_workers") == 2);
    CHECK(parsed.value("fulcrum_sni_routed_total", {{"service", odd}}) == 7);
    CHECK(parsed.value("fulcrum_preread_failures_total",
                       {{"listen", "0.0.0.0:443"}, {"reason", "no_match"}}) == 3);
    CHECK(parsed.value("fulcrum_preread_failures_total",
                       {{"listen", "0.0.0.0:443"}, {"reason", "timeout"}}) == 0);
    // Never a service's end: no series for it.
    CHECK_FALSE(
        parsed.has("fulcrum_sessions_ended_total", {{"service", odd}, {"reason", "no-service"}}));
    CHECK(parsed.has("fulcrum_sessions_ended_total", {{"service", odd}, {"reason", "shutdown"}}));
    CHECK(parsed.value("fulcrum_reloads_total") == 4);
    CHECK(parsed.value("fulcrum_reload_failures_total") == 1);
    CHECK(parsed.value("fulcrum_client_connections") == 3);
    CHECK(parsed.value("fulcrum_splice_bytes_total") == 1024);
    CHECK(parsed.value("fulcrum_splice_transfers_total") == 3);
    CHECK(parsed.value("fulcrum_splice_pool_exhausted_total") == 2);
    CHECK(parsed.value("fulcrum_splice_pipes_in_use") == 5);
    CHECK(parsed.value("fulcrum_splice_pipes_idle") == 6);
    CHECK(parsed.types.at("fulcrum_splice_pipes_in_use") == "gauge");
    CHECK(parsed.types.at("fulcrum_backend_session_duration_seconds") == "histogram");
    auto bucket = [&](const std::string& le) {
        auto labels = b0;
        labels["le"] = le;
        return parsed.value("fulcrum_backend_session_duration_seconds_bucket", labels);
    };
    CHECK(bucket("0.01") == 0);
    CHECK(bucket("0.05") == 1);
    CHECK(bucket("30") == 2);
    CHECK(bucket("+Inf") == 2);
    CHECK(parsed.value("fulcrum_backend_session_duration_seconds_count", b0) == 2);
    CHECK(parsed.value("fulcrum_backend_session_duration_seconds_sum", b0) == Approx(20.02));
}

TEST_CASE("the strict parser rejects malformed expositions", "[prometheus][parser]") {
    const std::string head = "# HELP m A metric.\n# TYPE m counter\n";
    CHECK_NOTHROW(parse_prometheus_text(head + "m{a=\"x\\\\y\\\"z\\n\"} 1\n"));
    const char* malformed[] = {
        "m 1\n",                                                    // no HELP or TYPE
        "# TYPE m counter\nm 1\n",                                  // no HELP
        "# HELP m A metric.\n# TYPE m counter\nm 1",                // no final newline
        "# HELP m A metric.\n# TYPE m counter\nm{a=\"x\"}1\n",      // no space before the value
        "# HELP m A metric.\n# TYPE m counter\nm{a=\"x\\t\"} 1\n",  // bad escape
        "# HELP m A metric.\n# TYPE m counter\nm{a=\"x} 1\n",       // unterminated
        "# HELP m A metric.\n# TYPE m counter\nm{a=x} 1\n",         // unquoted
        "# HELP m A metric.\n# TYPE m counter\nm{a=\"x\",} 1\n",    // trailing comma
        "# HELP m A metric.\n# TYPE m counter\nm{a=\"x\",a=\"y\"} 1\n",   // label twice
        "# HELP m A metric.\n# TYPE m counter\nm 1x\n",                   // bad value
        "# HELP m A metric.\n# TYPE m counter\nm 1 2\n",                  // timestamp
        "# HELP m A metric.\n# TYPE m counter\nm 1\nm 2\n",               // series twice
        "# HELP m A metric.\n# TYPE m counte\nm 1\n",                     // unknown type
        "# HELP m A metric.\n# TYPE m counter\n# TYPE m counter\nm 1\n",  // TYPE twice
        "# HELP m A metric.\n# TYPE m counter\n\nm 1\n",                  // empty line
        "# HELP m A metric.\n# TYPE m counter\n9m 1\n",                   // bad name
        // samples of m split by another family
        "# HELP m A.\n# TYPE m gauge\nm{a=\"1\"} 1\n# HELP n B.\n# TYPE n gauge\nn 1\n"
        "m{a=\"2\"} 1\n",
        // histogram: +Inf missing, then not cumulative, then _count disagreeing
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
    };
    for (const char* text : malformed) {
        INFO(text);
        CHECK_THROWS_AS(parse_prometheus_text(text), std::runtime_error);
    }
}
