// Protecting backends: per-backend limits (exact across threads), the wait queue's
// hand-over, backups, slow start's ramp, and the admission limits (rates, per source,
// bounded memory).
#include <netinet/in.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/balancer.hpp"
#include "fulcrum/lb/wait_queue.hpp"
#include "fulcrum/limits/admission.hpp"
#include "fulcrum/limits/rate_limiter.hpp"
#include "fulcrum/limits/source_table.hpp"

using namespace fulcrum;

namespace {

struct BackendSpec {
    std::string name;
    int max_connections = 0;
    bool backup = false;
    int weight = 1;
};

ServiceConfig service_of(const std::vector<BackendSpec>& backends) {
    ServiceConfig service;
    service.name = "web";
    std::uint16_t port = 3001;
    for (const BackendSpec& spec : backends) {
        BackendConfig b;
        b.name = spec.name;
        b.weight = spec.weight;
        b.max_connections = spec.max_connections;
        b.backup = spec.backup;
        b.address = parse_address("127.0.0.1:" + std::to_string(port++));
        service.backends.push_back(b);
    }
    return service;
}

std::string name_of(const Pick& pick) {
    return pick.kind == Pick::Kind::backend ? pick.member->config.name
           : pick.kind == Pick::Kind::wait  ? "wait"
                                            : "none";
}

// Records grants as a worker's thread would receive them.
struct RecordingTicket final : WaitTicket {
    void grant(const std::shared_ptr<WaitTicket>&, std::shared_ptr<Backend> slot) override {
        granted = true;
        this->slot = std::move(slot);
    }
    bool granted = false;
    std::shared_ptr<Backend> slot;
};

sockaddr_in6 v6_source(std::uint32_t n) {
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr.s6_addr[0] = 0x20;
    address.sin6_addr.s6_addr[1] = 0x01;
    std::memcpy(address.sin6_addr.s6_addr + 4, &n, sizeof n);  // a /64 each
    return address;
}

sockaddr_in v4_source(std::uint8_t last) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(0x7f000000u | last);
    return address;
}

const sockaddr* as_sockaddr(const auto& address) {
    return reinterpret_cast<const sockaddr*>(&address);
}

constexpr std::int64_t second_ns = 1'000'000'000;

}  // namespace

TEST_CASE("max_connections is exact across threads, and a full pool answers wait", "[protection]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 3}, {"b", 2}}));
    for (StrategyKind kind : {StrategyKind::round_robin, StrategyKind::least_connections,
                              StrategyKind::random_two, StrategyKind::source_hash}) {
        INFO(to_string(kind));
        Balancer balancer(pool, kind, 7);
        std::atomic<int> taken{0};
        std::atomic<int> waits{0};
        std::atomic<int> over{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 2000; ++i) {
                    const Pick pick = balancer.pick(nullptr, {});
                    if (pick.kind == Pick::Kind::wait) {
                        ++waits;
                        continue;
                    }
                    REQUIRE(pick.kind == Pick::Kind::backend);
                    ++taken;
                    const Backend& b = *pick.member->backend;
                    if (b.active.load() > pick.member->config.max_connections) ++over;
                    Balancer::release(*pick.member);
                }
            });
        }
        for (auto& thread : threads) thread.join();
        CHECK(over == 0);
        CHECK(taken + waits == 8000);
        CHECK(pool->members[0].backend->active == 0);
        CHECK(pool->members[1].backend->active == 0);

        std::vector<Pick> held;
        for (int i = 0; i < 5; ++i) held.push_back(balancer.pick(nullptr, {}));
        for (const Pick& pick : held) REQUIRE(pick.kind == Pick::Kind::backend);
        CHECK(pool->members[0].backend->active == 3);
        CHECK(pool->members[1].backend->active == 2);
        const Pick full = balancer.pick(nullptr, {});
        CHECK(name_of(full) == "wait");
        CHECK(std::string(full.reason) == "every backend is full");
        for (const Pick& pick : held) Balancer::release(*pick.member);
    }
}

TEST_CASE("a full backend that is drained or down is no reason to wait", "[protection]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 1}}));
    Balancer balancer(pool, StrategyKind::round_robin, 1);
    const Pick held = balancer.pick(nullptr, {});
    REQUIRE(held.kind == Pick::Kind::backend);
    CHECK(name_of(balancer.pick(nullptr, {})) == "wait");
    pool->members[0].backend->drained = true;
    CHECK(name_of(balancer.pick(nullptr, {})) == "none");
    Balancer::release(*held.member);
}

TEST_CASE("backups take connections only while no primary is routable", "[protection]") {
    auto pool = std::make_shared<const Pool>(
        service_of({{"p1", 1}, {"p2", 0}, {"b1", 0, true}, {"b2", 0, true}}));
    REQUIRE(pool->has_backups);
    Balancer balancer(pool, StrategyKind::round_robin, 1);
    Backend& p1 = *pool->members[0].backend;
    Backend& p2 = *pool->members[1].backend;
    auto picks = [&](int n) {
        std::string out;
        for (int i = 0; i < n; ++i) {
            const Pick pick = balancer.pick(nullptr, {});
            out += name_of(pick) + " ";
            if (pick.kind == Pick::Kind::backend) Balancer::release(*pick.member);
        }
        return out;
    };
    CHECK(picks(4) == "p1 p2 p1 p2 ");
    p1.routable = false;
    CHECK(picks(2) == "p2 p2 ");
    p2.routable = false;
    CHECK(picks(4) == "b1 b2 b1 b2 ");
    p1.routable = true;  // a primary is back: new connections return to it
    CHECK(picks(2) == "p1 p1 ");

    SECTION("a full primary makes connections wait, not spill to a backup") {
        const Pick held = balancer.pick(nullptr, {});
        REQUIRE(name_of(held) == "p1");
        CHECK(name_of(balancer.pick(nullptr, {})) == "wait");
        Balancer::release(*held.member);
    }
    SECTION("a primary this connection failed on leaves the retry to the backups") {
        std::vector<const PoolMember*> tried{&pool->members[0]};
        const Pick retry = balancer.pick(nullptr, tried);
        CHECK(name_of(retry) == "b1");
        Balancer::release(*retry.member);
    }
}

TEST_CASE("slow start ramps the effective weight in twentieths from a hundredth", "[protection]") {
    const Duration ramp = std::chrono::seconds(20);
    CHECK(slow_start_factor(ramp, 0, 5000) == 1);  // never went down
    CHECK(slow_start_factor(Duration::zero(), 1000, 1000) == 1);
    CHECK(slow_start_factor(ramp, 1000, 1000) == Approx(0.01));
    CHECK(slow_start_factor(ramp, 1000, 2000) == Approx(0.05));
    CHECK(slow_start_factor(ramp, 1000, 11000) == Approx(0.5));
    CHECK(slow_start_factor(ramp, 1000, 20999) == Approx(0.95));
    CHECK(slow_start_factor(ramp, 1000, 21000) == 1);

    ServiceConfig service = service_of({{"a", 0, false, 4}, {"b", 0, false, 4}});
    service.slow_start = ramp;
    Pool pool(service, nullptr, 1, 1000);
    pool.members[1].backend->mark_up(1000);  // b came back at t = 1 s
    const Pool half = pool.reweighted(service.slow_start, 11000);
    CHECK(half.members[0].effective_weight == 4);
    CHECK(half.members[1].effective_weight == Approx(2));
    CHECK(pool.reweighted(service.slow_start, 21000).members[1].effective_weight == 4);

    // A backend a reload adds to a running service ramps too; one there before does not.
    ServiceConfig grown = service;
    grown.backends.push_back(grown.backends[0]);
    grown.backends.back().name = "c";
    const Pool next(grown, &half, 1, 30000);
    CHECK(next.find("c")->effective_weight == Approx(0.04));
    CHECK(next.find("a")->effective_weight == 4);

    // Round-robin follows the ramp: at half weight b gets a third of the turns.
    auto shared = std::make_shared<const Pool>(half);
    RoundRobin rr(shared);
    int b_turns = 0;
    for (int i = 0; i < 300; ++i) b_turns += rr.pick(nullptr, {}) == &shared->members[1];
    CHECK(b_turns == 100);
}

TEST_CASE("the wait queue hands a freed slot to the oldest waiter, in order", "[protection]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 1}}));
    Balancer balancer(pool, StrategyKind::round_robin, 1);
    const std::shared_ptr<Backend>& a = pool->members[0].backend;
    WaitQueue queue;
    const Pick held = balancer.pick(nullptr, {});
    REQUIRE(held.kind == Pick::Kind::backend);

    auto first = std::make_shared<RecordingTicket>();
    auto second = std::make_shared<RecordingTicket>();
    auto third = std::make_shared<RecordingTicket>();
    Pick pick;
    auto repick = [&] { return balancer.pick(nullptr, {}); };
    CHECK(queue.enqueue(first, 2, false, repick, pick) == WaitQueue::Admission::queued);
    CHECK(queue.enqueue(second, 2, false, repick, pick) == WaitQueue::Admission::queued);
    CHECK(queue.enqueue(third, 2, false, repick, pick) == WaitQueue::Admission::full);
    CHECK(queue.length() == 2);

    queue.release(a);  // the holder ends: its slot goes to the first waiter
    CHECK(first->granted);
    CHECK(first->slot == a);
    CHECK_FALSE(second->granted);
    CHECK(a->active == 1);  // handed over, never free: no newcomer can take it
    CHECK(name_of(balancer.pick(nullptr, {})) == "wait");

    CHECK(queue.cancel(second));  // the second gives up (timeout, client gone)
    CHECK_FALSE(queue.cancel(second));
    CHECK(queue.length() == 0);
    queue.release(a);
    CHECK(a->active == 0);
}

TEST_CASE("a slot freed while a waiter enqueues is not lost", "[protection]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 1}}));
    Balancer balancer(pool, StrategyKind::round_robin, 1);
    const std::shared_ptr<Backend>& a = pool->members[0].backend;
    WaitQueue queue;
    REQUIRE(balancer.pick(nullptr, {}).kind == Pick::Kind::backend);
    auto ticket = std::make_shared<RecordingTicket>();
    Pick pick;
    // The holder releases between the waiter's pick (wait) and its enqueue: the repick
    // under the queue's lock finds the slot.
    a->active.fetch_sub(1);
    CHECK(queue.enqueue(
              ticket, 10, false, [&] { return balancer.pick(nullptr, {}); }, pick) ==
          WaitQueue::Admission::picked);
    CHECK(name_of(pick) == "a");
    CHECK(queue.length() == 0);

    SECTION("a slot of a drained backend frees it and wakes the waiter to pick again") {
        auto waiter = std::make_shared<RecordingTicket>();
        REQUIRE(queue.enqueue(
                    waiter, 10, false, [&] { return balancer.pick(nullptr, {}); }, pick) ==
                WaitQueue::Admission::queued);
        a->drained = true;
        queue.release(a);
        CHECK(waiter->granted);
        CHECK(waiter->slot == nullptr);
        CHECK(a->active == 0);
    }
}

TEST_CASE("GCRA lets a period's worth through at once, then the pace", "[protection]") {
    const Gcra gcra(Rate{10, std::chrono::seconds(1)});
    std::int64_t tat = 0;
    const std::int64_t start = 100 * second_ns;
    int admitted = 0;
    for (int i = 0; i < 15; ++i) admitted += gcra.admit(tat, start);
    CHECK(admitted == 10);  // the burst: one second's worth
    CHECK_FALSE(gcra.admit(tat, start + second_ns / 20));
    CHECK(gcra.admit(tat, start + second_ns / 10));  // one interval later, one more
    CHECK_FALSE(gcra.admit(tat, start + second_ns / 10));

    RateLimiter shared(Rate{1000, std::chrono::seconds(1)});
    std::atomic<int> through{0};
    std::vector<std::thread> threads;
    const std::int64_t now = steady_now_ns();
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) through += shared.admit(now);
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(through == 1000);  // exact across threads
}

TEST_CASE("rates parse and print", "[protection]") {
    CHECK(parse_rate("2000/s") == Rate{2000, std::chrono::seconds(1)});
    CHECK(parse_rate("60/m") == Rate{60, std::chrono::minutes(1)});
    CHECK_FALSE(parse_rate("0/s"));
    CHECK_FALSE(parse_rate("20"));
    CHECK_FALSE(parse_rate("20/h"));
    CHECK_FALSE(parse_rate("-1/s"));
    CHECK_FALSE(parse_rate("99999999999999999999/s"));
    CHECK(format_rate(*parse_rate("60/m")) == "60/m");
}

TEST_CASE("per-source limits count by address, IPv6 by /64, and stay exact", "[protection]") {
    LimitsConfig limits;
    limits.max_connections_per_source = 2;
    Admission admission(limits, nullptr);
    const auto a = v4_source(2);
    const auto b = v4_source(3);
    CHECK_FALSE(admission.admit(as_sockaddr(a)));
    CHECK_FALSE(admission.admit(as_sockaddr(a)));
    CHECK(admission.admit(as_sockaddr(a)) == Rejection::per_source);
    CHECK_FALSE(admission.admit(as_sockaddr(b)));  // another source is unaffected
    admission.release(as_sockaddr(a));
    CHECK_FALSE(admission.admit(as_sockaddr(a)));

    // Two addresses of one /64 are one source.
    auto v6 = v6_source(7);
    auto same_64 = v6;
    same_64.sin6_addr.s6_addr[15] = 0x99;
    CHECK_FALSE(admission.admit(as_sockaddr(v6)));
    CHECK_FALSE(admission.admit(as_sockaddr(same_64)));
    CHECK(admission.admit(as_sockaddr(v6)) == Rejection::per_source);

    // A reload keeps the counts.
    Admission reloaded(limits, &admission);
    CHECK(reloaded.admit(as_sockaddr(a)) == Rejection::per_source);
}

TEST_CASE("the per-source table stays bounded whatever the number of sources", "[protection]") {
    SourceTable table(64);  // idle entries per shard
    const Gcra rate(Rate{5, std::chrono::seconds(1)});
    const std::int64_t now = 50 * second_ns;
    for (std::uint32_t n = 0; n < 50'000; ++n) {
        const SourceKey key = source_key(as_sockaddr(v6_source(n)));
        REQUIRE(table.admit(key, now, 10, &rate));
        table.release(key, now);  // closed at once: only the rate remembers it
    }
    CHECK(table.size() <= SourceTable::shard_count * 64);
    // Sources with open connections are never evicted: their counts stay exact.
    const SourceKey open = source_key(as_sockaddr(v4_source(9)));
    REQUIRE(table.admit(open, now, 1, nullptr));
    for (std::uint32_t n = 50'000; n < 60'000; ++n) {
        const SourceKey key = source_key(as_sockaddr(v6_source(n)));
        REQUIRE(table.admit(key, now, 10, &rate));
        table.release(key, now);
    }
    CHECK_FALSE(table.admit(open, now, 1, nullptr));
    // Entries whose rate has nothing left to remember go at once.
    SourceTable quiet;
    const SourceKey k = source_key(as_sockaddr(v4_source(1)));
    REQUIRE(quiet.admit(k, now, 1, nullptr));
    quiet.release(k, now);
    CHECK(quiet.size() == 0);
}
