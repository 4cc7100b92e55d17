// plan_reload: what a reload changes, from the two configurations alone.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "fulcrum/config/config.hpp"
#include "fulcrum/reload_plan.hpp"

using namespace fulcrum;

namespace {

ServiceConfig service(const std::string& name, const std::string& listen,
                      std::vector<std::pair<std::string, int>> backends = {{"b0", 1}}) {
    ServiceConfig s;
    s.name = name;
    s.listen = parse_address(listen);
    for (const auto& backend : backends) {
        BackendConfig b;
        b.name = backend.first;
        b.weight = backend.second;
        b.address = parse_address("127.0.0.1:3001");
        s.backends.push_back(b);
    }
    return s;
}

Config config_of(std::vector<ServiceConfig> services) {
    Config config;
    config.services = std::move(services);
    return config;
}

std::vector<std::string> bound(const ReloadPlan& plan) {
    std::vector<std::string> names;
    for (const auto& bind : plan.bind) names.push_back(bind.service);
    return names;
}

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("the plan at start binds every service, exclusively", "[reload]") {
    const ReloadPlan plan = plan_reload(
        Config{}, config_of({service("web", "127.0.0.1:8080"), service("api", "127.0.0.1:8081")}));
    CHECK(bound(plan) == Names{"web", "api"});
    CHECK(plan.bind[0].exclusive);
    CHECK(plan.bind[1].exclusive);
    CHECK(plan.retire.empty());
    CHECK(plan.changed.empty());
    CHECK(plan.need_restart.empty());
    CHECK(plan.summary == "service web added; service api added");
}

TEST_CASE("an unchanged configuration plans nothing", "[reload]") {
    const Config config = config_of({service("web", "127.0.0.1:8080")});
    const ReloadPlan plan = plan_reload(config, config);
    CHECK(plan.bind.empty());
    CHECK(plan.retire.empty());
    CHECK(plan.changed.empty());
    CHECK(plan.summary == "no changes");
}

TEST_CASE("backend changes keep the listener and are summarised", "[reload]") {
    const Config before = config_of({service("web", "127.0.0.1:8080", {{"b0", 1}, {"b1", 1}})});
    const Config after = config_of({service("web", "127.0.0.1:8080", {{"b1", 2}, {"b2", 1}})});
    const ReloadPlan plan = plan_reload(before, after);
    CHECK(plan.bind.empty());
    CHECK(plan.retire.empty());
    CHECK(plan.changed == Names{"web"});
    CHECK(plan.summary == "service web changed: backends ~b1 +b2 -b0");
}

TEST_CASE("a moved service binds anew and retires its old listener; a removed one retires",
          "[reload]") {
    const Config before =
        config_of({service("web", "127.0.0.1:8080"), service("old", "127.0.0.1:8081")});
    const Config after = config_of({service("web", "127.0.0.1:9090")});
    const ReloadPlan plan = plan_reload(before, after);
    CHECK(bound(plan) == Names{"web"});
    CHECK(plan.bind[0].exclusive);
    CHECK(plan.retire == Names{"web", "old"});
    CHECK(plan.summary == "service web moved to 127.0.0.1:9090; service old removed");
}

TEST_CASE("a service renamed onto an address we serve does not need it free", "[reload]") {
    const Config before = config_of({service("web", "127.0.0.1:8080")});
    const Config after = config_of({service("www", "127.0.0.1:8080")});
    const ReloadPlan plan = plan_reload(before, after);
    REQUIRE(bound(plan) == Names{"www"});
    CHECK_FALSE(plan.bind[0].exclusive);
    CHECK(plan.retire == Names{"web"});
}

TEST_CASE("settings a reload cannot change are named", "[reload]") {
    Config before = config_of({service("web", "127.0.0.1:8080")});
    Config after = before;
    after.runtime.workers = 4;
    after.admin.listen = parse_address("127.0.0.1:9999");
    CHECK(plan_reload(before, after).need_restart == Names{"runtime.workers", "admin.listen"});
}
