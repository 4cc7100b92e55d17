// Counters without sockets: one writer per slot, the slots of every worker summed on
// read, and durations counted in the right histogram bucket.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>

#include "fulcrum/stats/metrics.hpp"

using namespace fulcrum;
using namespace std::chrono_literals;

TEST_CASE("each worker counts in its own slot, read back as a sum", "[metrics]") {
    PerWorker<BackendTraffic> traffic(3);
    traffic[0].connections.add();
    traffic[2].connections.add(2);
    traffic[1].bytes_sent.add(100);
    std::uint64_t connections = 0;
    std::uint64_t bytes_sent = 0;
    traffic.for_each([&](const BackendTraffic& t) {
        connections += t.connections.value();
        bytes_sent += t.bytes_sent.value();
    });
    CHECK(connections == 3);
    CHECK(bytes_sent == 100);
    CHECK(traffic[1].connections.value() == 0);
}

TEST_CASE("a duration on a bucket's bound counts in that bucket", "[metrics]") {
    PerWorker<BackendTraffic> traffic(1);
    traffic[0].session_duration.observe(1ms);  // le="0.001" means <= 1 ms
    traffic[0].session_duration.observe(2h);   // above every bound: +Inf only
    HistogramSample sample;
    traffic.for_each([&](const BackendTraffic& t) { t.session_duration.add_to(sample); });
    CHECK(sample.counts.front() == 1);
    CHECK(sample.counts.back() == 1);
}
