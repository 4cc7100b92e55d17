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

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("the plan at start binds every listen address", "[reload]") {
    const ReloadPlan plan = plan_reload(
        Config{}, config_of({service("web", "127.0.0.1:8080"), service("api", "127.0.0.1:8081")}));
    CHECK(plan.bind == Names{"127.0.0.1:8080", "127.0.0.1:8081"});
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
    CHECK(plan.bind == Names{"127.0.0.1:9090"});
    CHECK(plan.retire == Names{"127.0.0.1:8080", "127.0.0.1:8081"});
    CHECK(plan.summary == "service web moved to 127.0.0.1:9090; service old removed");
}

TEST_CASE("a service renamed on an address we serve keeps its listener", "[reload]") {
    const Config before = config_of({service("web", "127.0.0.1:8080")});
    const Config after = config_of({service("www", "127.0.0.1:8080")});
    const ReloadPlan plan = plan_reload(before, after);
    CHECK(plan.bind.empty());
    CHECK(plan.retire.empty());
    CHECK(plan.summary == "service www added; service web removed");
}

TEST_CASE("services sharing an address by server name share one listener", "[reload][sni]") {
    const Config one = config_of({service("a", "127.0.0.1:8443")});
    const Config two = config_of({service("a", "127.0.0.1:8443"), service("b", "127.0.0.1:8443")});
    CHECK(plan_reload(Config{}, two).bind == Names{"127.0.0.1:8443"});
    // Services joining or leaving the address: the listener stays.
    for (const auto& [before, after] : {std::pair{one, two}, std::pair{two, one}}) {
        const ReloadPlan plan = plan_reload(before, after);
        CHECK(plan.bind.empty());
        CHECK(plan.retire.empty());
    }
    // The last one leaving: it closes.
    const ReloadPlan gone = plan_reload(two, config_of({service("c", "127.0.0.1:9000")}));
    CHECK(gone.bind == Names{"127.0.0.1:9000"});
    CHECK(gone.retire == Names{"127.0.0.1:8443"});
}

TEST_CASE("port 0 listeners are each their service's own", "[reload]") {
    const Config config = config_of({service("a", "127.0.0.1:0"), service("b", "127.0.0.1:0")});
    CHECK(plan_reload(Config{}, config).bind == Names{"127.0.0.1:0 a", "127.0.0.1:0 b"});
    CHECK(plan_reload(config, config).bind.empty());
}

TEST_CASE("settings a reload cannot change are named", "[reload]") {
    Config before = config_of({service("web", "127.0.0.1:8080")});
    Config after = before;
    after.runtime.workers = 4;
    after.admin.listen = parse_address("127.0.0.1:9999");
    CHECK(plan_reload(before, after).need_restart == Names{"runtime.workers", "admin.listen"});
}
