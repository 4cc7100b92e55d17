// The shared balancer: a global schedule across threads, take/release of active counts,
// "none" with its reason, and backend identity across pool snapshots.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/lb/balancer.hpp"
#include "fulcrum/lb/strategy_source_hash.hpp"

using namespace fulcrum;

namespace {

ServiceConfig service_of(const std::vector<std::pair<std::string, int>>& backends) {
    ServiceConfig service;
    service.name = "web";
    std::uint16_t port = 3001;
    for (const auto& backend : backends) {
        BackendConfig b;
        b.name = backend.first;
        b.weight = backend.second;
        b.address = parse_address("127.0.0.1:" + std::to_string(port++));
        service.backends.push_back(b);
    }
    return service;
}

std::string name_of(const Pick& pick) {
    return pick.kind == Pick::Kind::backend ? pick.member->config.name : "-";
}

}  // namespace

TEST_CASE("round-robin's schedule is global: picks from several threads follow it exactly",
          "[balancer]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 3}, {"b", 1}}));
    Balancer balancer(pool, StrategyKind::round_robin, 1);
    // Two threads (as two workers) pick concurrently; over whole periods of the schedule
    // the counts are exact, which per-worker schedules could not promise.
    constexpr int per_thread = 10'000;
    std::vector<std::map<std::string, int>> counts(2);
    std::vector<std::thread> threads;
    for (auto& count : counts) {
        threads.emplace_back([&balancer, &count] {
            for (int i = 0; i < per_thread; ++i) {
                Pick pick = balancer.pick(nullptr, {});
                ++count[name_of(pick)];
                Balancer::release(*pick.member);
            }
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(counts[0]["a"] + counts[1]["a"] == 15'000);
    CHECK(counts[0]["b"] + counts[1]["b"] == 5'000);
}

TEST_CASE("round-robin with weights 3:1 gives 3:1 in every window of four", "[balancer]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 3}, {"b", 1}}));
    RoundRobin rr(pool);
    std::string sequence;
    for (int i = 0; i < 40; ++i) sequence += rr.pick(nullptr, {})->config.name;
    for (std::size_t start = 0; start + 4 <= sequence.size(); ++start) {
        INFO(sequence << " from " << start);
        CHECK(std::count(sequence.begin() + start, sequence.begin() + start + 4, 'b') == 1);
    }
}

TEST_CASE("round-robin's schedule reduces and bounds weights", "[balancer]") {
    SECTION("common divisors drop out") {
        RoundRobin rr(std::make_shared<const Pool>(service_of({{"a", 300}, {"b", 100}})));
        CHECK(rr.schedule().size() == 4);
    }
    SECTION("huge weights are scaled down, the ratio kept") {
        RoundRobin rr(
            std::make_shared<const Pool>(service_of({{"a", 1'000'000}, {"b", 3'000'001}})));
        CHECK(rr.schedule().size() <= RoundRobin::max_schedule);
        const auto a = std::count(rr.schedule().begin(), rr.schedule().end(), 0u);
        CHECK(static_cast<double>(a) / static_cast<double>(rr.schedule().size()) ==
              Approx(0.25).epsilon(0.001));
    }
}

TEST_CASE(
    "round-robin and least-connections weigh the effective weight, source-hash the configured one",
    "[balancer]") {
    ServiceConfig service = service_of({{"a", 1}, {"b", 1}});
    Pool pool(service);
    pool.members[0].effective_weight = 3;  // as slow start or discovery would set it
    auto shared = std::make_shared<const Pool>(pool);
    for (StrategyKind kind : {StrategyKind::round_robin, StrategyKind::least_connections}) {
        INFO(to_string(kind));
        Balancer balancer(shared, kind, 1);
        std::map<std::string, int> counts;
        std::vector<Pick> held;
        for (int i = 0; i < 400; ++i) {
            held.push_back(balancer.pick(nullptr, {}));
            ++counts[name_of(held.back())];
        }
        CHECK(counts["a"] == 300);
        CHECK(counts["b"] == 100);
        for (const Pick& pick : held) Balancer::release(*pick.member);
    }
    // Source hashing keeps the configured weights: a table that moved with every slow-start
    // step would re-map clients each time.
    MaglevTable table(*shared);
    std::size_t slots_of_a = 0;
    for (std::size_t slot = 0; slot < MaglevTable::size; ++slot) slots_of_a += table[slot] == 0;
    CHECK(static_cast<double>(slots_of_a) == Approx(MaglevTable::size * 0.5).epsilon(0.01));
}

TEST_CASE("the balancer owns active counts: pick takes, release gives back", "[balancer]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 1}, {"b", 1}}));
    Balancer balancer(pool, StrategyKind::least_connections, 1);
    Pick first = balancer.pick(nullptr, {});
    Pick second = balancer.pick(nullptr, {});
    REQUIRE(first.kind == Pick::Kind::backend);
    REQUIRE(second.kind == Pick::Kind::backend);
    CHECK(first.member != second.member);  // least-connections saw the first one's count
    CHECK(pool->members[0].backend->active == 1);
    CHECK(pool->members[1].backend->active == 1);
    Balancer::release(*first.member);
    Balancer::release(*second.member);
    CHECK(pool->members[0].backend->active == 0);
    CHECK(pool->members[1].backend->active == 0);
}

TEST_CASE("a pick that finds nothing says why", "[balancer]") {
    auto pool = std::make_shared<const Pool>(service_of({{"a", 1}, {"b", 1}}));
    Balancer balancer(pool, StrategyKind::round_robin, 1);
    auto none = [&](std::span<const PoolMember* const> tried = {}) {
        Pick pick = balancer.pick(nullptr, tried);
        CHECK(pick.kind == Pick::Kind::none);
        CHECK(pick.member == nullptr);
        return std::string(pick.reason);
    };
    SECTION("empty pool") {
        Balancer empty(std::make_shared<const Pool>(service_of({})), StrategyKind::random_two, 1);
        CHECK(std::string(empty.pick(nullptr, {}).reason) == "no backends");
    }
    SECTION("all drained") {
        for (const PoolMember& m : pool->members) m.backend->drained = true;
        CHECK(none() == "every backend is drained");
    }
    SECTION("all down") {
        for (const PoolMember& m : pool->members) {
            m.backend->check_up = false;
            m.backend->routable = false;
        }
        CHECK(none() == "every backend is down");
    }
    SECTION("all tried") {
        std::vector<const PoolMember*> tried{&pool->members[0], &pool->members[1]};
        CHECK(none(tried) == "every eligible backend was tried");
    }
    SECTION("one drained, one down") {
        pool->members[0].backend->drained = true;
        pool->members[1].backend->check_up = false;
        pool->members[1].backend->routable = false;
        CHECK(none() == "no backend is eligible (drained or down)");
    }
}

TEST_CASE("a backend's identity is its name: its state survives a new address and weight",
          "[balancer]") {
    ServiceConfig before = service_of({{"a", 1}, {"b", 1}});
    Pool first(before);
    Backend& a = *first.members[0].backend;
    a.check_up = false;
    a.drained = true;
    a.active = 2;
    a.traffic[0].connections.add(5);

    ServiceConfig after = service_of({{"c", 1}, {"a", 4}});
    after.backends[1].address = parse_address("127.0.0.1:4001");  // a moved (new DNS answer)
    Pool second(after, &first);
    const PoolMember* moved = second.find("a");
    REQUIRE(moved != nullptr);
    CHECK(moved->backend.get() == &a);
    CHECK(moved->config.address.port() == 4001);
    CHECK(moved->config.weight == 4);
    CHECK(moved->effective_weight == 4);
    CHECK_FALSE(moved->backend->check_up);
    CHECK(moved->backend->drained);
    CHECK(moved->backend->active == 2);
    CHECK(moved->backend->traffic[0].connections.value() == 5);
    // The old snapshot still has the old address: live sessions keep theirs.
    CHECK(first.find("a")->config.address.port() == 3001);
    // A new name is a new backend, a name that went is gone.
    CHECK(second.find("c")->backend.get() != first.members[1].backend.get());
    CHECK(second.find("b") == nullptr);
}
