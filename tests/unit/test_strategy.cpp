#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fulcrum/config.hpp"
#include "fulcrum/strategy.hpp"

using namespace fulcrum;

namespace {

std::shared_ptr<const Pool> make_pool(const std::vector<std::pair<std::string, int>>& backends) {
    ServiceConfig service;
    for (const auto& [name, weight] : backends) {
        BackendConfig b;
        b.name = name;
        b.weight = weight;
        service.backends.push_back(b);
    }
    return std::make_shared<const Pool>(service);
}

std::string picks(Strategy& strategy, int count) {
    std::string out;
    for (int i = 0; i < count; ++i) {
        Backend* b = strategy.pick(nullptr, {});
        out += b == nullptr ? "-" : b->config.name;
    }
    return out;
}

}  // namespace

TEST_CASE("round-robin alternates equal backends in order") {
    auto pool = make_pool({{"a", 1}, {"b", 1}, {"c", 1}});
    RoundRobin rr(pool);
    CHECK(picks(rr, 7) == "abcabca");
}

TEST_CASE("round-robin spreads weights smoothly") {
    auto pool = make_pool({{"a", 5}, {"b", 1}, {"c", 1}});
    RoundRobin rr(pool);
    CHECK(picks(rr, 14) == "aabacaaaabacaa");
}

TEST_CASE("round-robin skips unhealthy backends and those already tried") {
    auto pool = make_pool({{"a", 1}, {"b", 1}, {"c", 1}});
    RoundRobin rr(pool);
    pool->backends[1]->healthy = false;
    CHECK(picks(rr, 4) == "acac");

    Backend* a = pool->backends[0].get();
    std::vector<Backend*> tried{a};
    Backend* next = rr.pick(nullptr, tried);
    REQUIRE(next != nullptr);
    CHECK(next->config.name == "c");
    tried.push_back(next);
    CHECK(rr.pick(nullptr, tried) == nullptr);
}

TEST_CASE("round-robin returns none when every backend is out") {
    auto pool = make_pool({{"a", 1}, {"b", 2}});
    RoundRobin rr(pool);
    for (auto& b : pool->backends) b->healthy = false;
    CHECK(picks(rr, 3) == "---");
    pool->backends[1]->healthy = true;
    CHECK(picks(rr, 2) == "bb");
}
