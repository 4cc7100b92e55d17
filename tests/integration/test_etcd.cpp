// Backends from etcd ([service.discovery] type = "etcd"): a real etcd on free loopback
// ports with a temporary data directory, three fulcrum instances watching one prefix,
// and `fulcrum register` holding a lease. etcd is restarted on another client port to
// change the store while the instances cannot see it (an outage with changes, and a
// compaction past their watch revision).
#include <unistd.h>

#include <httplib.h>
#include <openssl/evp.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using nlohmann::json;

namespace {

const std::string etcd_binary = "/usr/bin/etcd";
const std::string prefix = "/fulcrum/test/";

bool have_etcd() {
    if (::access(etcd_binary.c_str(), X_OK) == 0) return true;
    WARN("etcd is not installed (tests/install-deps.sh --test installs it); skipping");
    return false;
}

std::string base64(const std::string& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// One etcd member with its data in a temporary directory; restart() keeps the data and
// may listen for clients elsewhere (the peer URL stays: it is in the data).
class Etcd {
public:
    Etcd() : peer_port_(free_port()) { start(free_port()); }

    void start(std::uint16_t client_port) {
        process_.reset();
        client_port_ = client_port;
        const std::string client = url();
        const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
        process_.emplace(std::vector<std::string>{
            etcd_binary, "--name", "test", "--data-dir", data_.path() + "/member",
            "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls",
            peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "test=" + peer,
            "--log-level", "warn", "--logger", "zap"});
        const bool up = poll_until(
            [&] {
                httplib::Client c(client);
                const auto reply = c.Get("/health");
                return reply && reply->status == 200 &&
                       reply->body.find("\"true\"") != std::string::npos;
            },
            20s, 50ms);
        if (!up) throw std::runtime_error("etcd did not start:\n" + process_->output());
    }
    void kill() { process_.reset(); }  // SIGKILL and reap

    std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }

    // The store's revision after the request.
    std::int64_t call(const std::string& path, const json& body) const {
        httplib::Client c(url());
        c.set_read_timeout(10, 0);
        const auto reply = c.Post(path.c_str(), body.dump(), "application/json");
        if (!reply || reply->status != 200) {
            throw std::runtime_error("etcd " + path + " failed: " +
                                     (reply ? reply->body : httplib::to_string(reply.error())));
        }
        const json answer = json::parse(reply->body);
        const json header = answer.value("header", json::object());
        return header.contains("revision") ? std::stoll(header["revision"].get<std::string>()) : 0;
    }
    std::int64_t put(const std::string& key, const std::string& value) const {
        return call("/v3/kv/put", {{"key", base64(key)}, {"value", base64(value)}});
    }
    std::int64_t remove(const std::string& key) const {
        return call("/v3/kv/deleterange", {{"key", base64(key)}});
    }
    void compact(std::int64_t revision) const {
        call("/v3/kv/compaction", {{"revision", revision}, {"physical", true}});
    }

private:
    TempDir data_;
    std::uint16_t peer_port_;
    std::uint16_t client_port_ = 0;
    std::optional<ChildProcess> process_;
};

std::string value_of(const NamedEcho& backend, const std::string& extra = "") {
    return "{\"address\": \"127.0.0.1:" + std::to_string(backend.port()) + "\"" + extra + "}";
}

// One fulcrum instance watching `endpoints` (a TOML list's items).
struct Instance {
    explicit Instance(const std::string& endpoints)
        : listen(free_port()),
          admin(free_port()),
          fulcrum(config(endpoints, prefix), {listen, admin}) {}

    std::string config(const std::string& endpoints, const std::string& watched) const {
        return "[log]\nlevel = \"debug\"\n[runtime]\nworkers = " +
               std::to_string(default_workers()) +
               "\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin) +
               "\"\n[[service]]\nname = \"svc\"\nlisten = \"127.0.0.1:" + std::to_string(listen) +
               "\"\n[service.health]\nenabled = false\n[service.discovery]\ntype = "
               "\"etcd\"\nendpoints = [" +
               endpoints + "]\nprefix = \"" + watched + "\"\n";
    }

    json service() const { return status_of(admin)["services"][0]; }
    std::set<std::string> names() const {
        std::set<std::string> out;
        const json status = service();  // the loop below must not outlive it
        for (const json& backend : status["backends"]) out.insert(backend["name"]);
        return out;
    }
    json backend(const std::string& name) const {
        const json status = service();
        for (const json& backend : status["backends"]) {
            if (backend["name"] == name) return backend;
        }
        return nullptr;
    }
    double metric(const std::string& name) const {
        return scrape(admin).value(name, {{"service", "svc"}});
    }
    // The backends `count` new connections reach, each checked with an echo.
    std::multiset<std::string> reached(int count) const {
        std::multiset<std::string> out;
        for (int i = 0; i < count; ++i) {
            auto [socket, name] = connect_named(listen);
            const std::string bytes = "ping " + std::to_string(i);
            socket.send_all(bytes);
            if (socket.read_exact(bytes.size()) != bytes) throw std::runtime_error("bad echo");
            out.insert(name);
        }
        return out;
    }

    std::uint16_t listen;
    std::uint16_t admin;
    Fulcrum fulcrum;
};

using Instances = std::vector<std::unique_ptr<Instance>>;

Instances three_instances(const std::string& endpoints) {
    Instances out;
    for (int i = 0; i < 3; ++i) out.push_back(std::make_unique<Instance>(endpoints));
    return out;
}

// Polls until `condition` holds on every instance.
bool on_all(const Instances& instances, const std::function<bool(const Instance&)>& condition,
            std::chrono::milliseconds timeout = 20s) {
    const bool held = poll_until(
        [&] {
            return std::ranges::all_of(instances, [&](const auto& i) { return condition(*i); });
        },
        timeout, 20ms);
    if (!held) {
        for (const auto& i : instances) {
            if (!condition(*i))
                UNSCOPED_INFO("an instance's log:\n" << i->fulcrum.process().output());
        }
    }
    return held;
}

bool all_have(const Instances& instances, const std::set<std::string>& names,
              std::chrono::milliseconds timeout = 20s) {
    return on_all(
        instances, [&](const Instance& i) { return i.names() == names; }, timeout);
}

}  // namespace

TEST_CASE(
    "etcd: three instances on one prefix take a registration, a delete, a drain and a "
    "weight; a lease expiry removes the backend; invalid values are skipped",
    "[etcd]") {
    if (!have_etcd()) return;
    Etcd etcd;
    NamedEcho a("a");
    NamedEcho b("b");
    NamedEcho c("c");
    etcd.put(prefix + "a", value_of(a));
    const Instances instances = three_instances("\"" + etcd.url() + "\"");
    REQUIRE(all_have(instances, {"a"}));
    for (const auto& i : instances) {
        CHECK(i->backend("a")["source"] == "etcd");
        CHECK(i->reached(2) == std::multiset<std::string>{"a", "a"});
    }

    // A registration with a lease reaches all three.
    ChildProcess registrar({FULCRUM_BINARY, "register", "--etcd", etcd.url(), "--prefix", prefix,
                            "--name", "b", "--address", "127.0.0.1:" + std::to_string(b.port()),
                            "--ttl", "2s", "--weight", "3"});
    REQUIRE(all_have(instances, {"a", "b"}));
    for (const auto& i : instances) {
        CHECK(i->backend("b")["configured_weight"] == 3);
        const std::multiset<std::string> reached = i->reached(8);
        CHECK(reached.count("b") > 0);
        CHECK(i->fulcrum.process().wait_for_output("etcd " + prefix + ": added b", 5s));
    }

    // A delete leaves all three.
    etcd.remove(prefix + "a");
    REQUIRE(all_have(instances, {"b"}));
    for (const auto& i : instances)
        CHECK(i->reached(3) == std::multiset<std::string>{"b", "b", "b"});

    // drain: true takes c out of every instance for new connections.
    etcd.put(prefix + "c", value_of(c));
    REQUIRE(all_have(instances, {"b", "c"}));
    etcd.put(prefix + "c", value_of(c, ", \"drain\": true"));
    REQUIRE(
        on_all(instances, [](const Instance& i) { return i.backend("c")["state"] == "drained"; }));
    for (const auto& i : instances) CHECK(i->reached(6).count("b") == 6);
    // Undrained with weight 5: c takes new connections again, at its new weight.
    etcd.put(prefix + "c", value_of(c, ", \"weight\": 5"));
    REQUIRE(on_all(instances, [](const Instance& i) {
        const json backend = i.backend("c");
        return backend["state"] == "up" && backend["configured_weight"] == 5;
    }));
    for (const auto& i : instances) CHECK(i->reached(16).count("c") >= 8);

    // Invalid values: skipped and counted; one replacing c's keeps the valid one; a nested
    // key is no backend.
    const double invalid_before = instances[0]->metric("fulcrum_etcd_invalid_values_total");
    etcd.put(prefix + "d", "not json");
    etcd.put(prefix + "e", "{\"address\": \"backend.example:1\"}");
    etcd.put(prefix + "c", "{\"address\": \"127.0.0.1:0\"}");
    const std::int64_t revision = etcd.put(prefix + "nested/f", value_of(a));
    REQUIRE(on_all(instances, [&](const Instance& i) {
        return i.metric("fulcrum_etcd_revision") == static_cast<double>(revision);
    }));
    for (const auto& i : instances) {
        CHECK(i->metric("fulcrum_etcd_invalid_values_total") == invalid_before + 3);
        CHECK(i->names() == std::set<std::string>{"b", "c"});
        CHECK(i->backend("c")["configured_weight"] == 5);
        CHECK(i->service()["revision"] == revision);
        CHECK(i->metric("fulcrum_etcd_watch_up") == 1);
        CHECK(i->metric("fulcrum_etcd_events_total") >= 8);
        CHECK(i->fulcrum.process().output().find("key " + prefix + "d: not valid JSON") !=
              std::string::npos);
    }

    // The registrar dies without deregistering: its lease expires, b leaves everywhere.
    registrar.send_signal(SIGKILL);
    REQUIRE(all_have(instances, {"c"}));
    for (const auto& i : instances) CHECK(i->reached(2) == std::multiset<std::string>{"c", "c"});

    // SIGTERM deregisters at once (no waiting for the lease).
    ChildProcess second({FULCRUM_BINARY, "register", "--etcd", etcd.url(), "--prefix", prefix,
                         "--name", "b", "--address", "127.0.0.1:" + std::to_string(b.port()),
                         "--ttl", "30s"});
    REQUIRE(all_have(instances, {"b", "c"}));
    second.send_signal(SIGTERM);
    CHECK(second.wait_exit(10s) == 0);
    CHECK(all_have(instances, {"c"}, 5s));
}

TEST_CASE(
    "etcd: started before etcd; etcd killed, the last set serves; restarted, every "
    "instance resyncs; a compaction past the watch revision makes them re-list",
    "[etcd]") {
    if (!have_etcd()) return;
    NamedEcho a("a");
    NamedEcho b("b");
    NamedEcho c("c");
    NamedEcho d("d");
    // The first endpoint never answers: requests fail over to the second.
    const std::uint16_t dead = free_port();
    const std::uint16_t seen = free_port();
    const std::string endpoints = "\"http://127.0.0.1:" + std::to_string(dead) +
                                  "\", \"http://127.0.0.1:" + std::to_string(seen) + "\"";
    const Instances instances = three_instances(endpoints);
    for (const auto& i : instances) {
        CHECK(i->names().empty());
        CHECK(i->metric("fulcrum_etcd_watch_up") == 0);
    }

    Etcd etcd;
    const std::uint16_t hidden = free_port();  // where the instances do not look
    etcd.put(prefix + "a", value_of(a));
    etcd.put(prefix + "b", value_of(b));
    etcd.kill();
    etcd.start(seen);
    REQUIRE(all_have(instances, {"a", "b"}));
    REQUIRE(on_all(instances,
                   [](const Instance& i) { return i.metric("fulcrum_etcd_watch_up") == 1; }));

    // etcd gone: the last known set goes on serving.
    etcd.kill();
    REQUIRE(on_all(instances,
                   [](const Instance& i) { return i.metric("fulcrum_etcd_watch_up") == 0; }));
    for (const auto& i : instances) {
        CHECK(i->names() == std::set<std::string>{"a", "b"});
        const std::multiset<std::string> reached = i->reached(8);
        CHECK(reached.count("a") + reached.count("b") == 8);
        CHECK(reached.count("a") > 0);
        CHECK(reached.count("b") > 0);
    }

    // Changes while they cannot see etcd; back where they look, every instance resyncs.
    etcd.start(hidden);
    etcd.remove(prefix + "a");
    etcd.put(prefix + "c", value_of(c));
    etcd.kill();
    etcd.start(seen);
    REQUIRE(all_have(instances, {"b", "c"}));
    for (const auto& i : instances) {
        CHECK(i->fulcrum.process().wait_for_output("again from revision", 10s));
        CHECK(i->reached(6).count("a") == 0);
    }

    // A compaction past the revision they watch from: they re-list, and end up with
    // exactly what the store has.
    etcd.kill();
    etcd.start(hidden);
    etcd.remove(prefix + "b");
    etcd.put(prefix + "d", value_of(d));
    const std::int64_t revision = etcd.put(prefix + "c", value_of(c, ", \"weight\": 2"));
    etcd.compact(revision);
    etcd.kill();
    etcd.start(seen);
    REQUIRE(all_have(instances, {"c", "d"}));
    for (const auto& i : instances) {
        CHECK(i->fulcrum.process().wait_for_output("compacted", 10s));
        CHECK(i->backend("c")["configured_weight"] == 2);
        CHECK(i->metric("fulcrum_etcd_revision") >= static_cast<double>(revision));
        const std::multiset<std::string> reached = i->reached(6);
        CHECK(reached.count("c") + reached.count("d") == 6);
    }
}

TEST_CASE(
    "etcd: SIGHUP to another prefix re-reads, an unchanged one keeps the watch; "
    "SIGTERM stops the watch at once",
    "[etcd][reload]") {
    if (!have_etcd()) return;
    Etcd etcd;
    NamedEcho a("a");
    NamedEcho b("b");
    etcd.put(prefix + "a", value_of(a));
    etcd.put("/fulcrum/other/b", value_of(b));
    const std::string endpoints = "\"" + etcd.url() + "\"";
    Instances instances;
    instances.push_back(std::make_unique<Instance>(endpoints));
    Instance& instance = *instances[0];
    REQUIRE(all_have(instances, {"a"}));

    reload(instance.fulcrum, instance.config(endpoints, "/fulcrum/other/"), 1);
    REQUIRE(all_have(instances, {"b"}));
    CHECK(instance.reached(2).count("b") == 2);
    // The same file again: the watch goes on (no second read, no new watch).
    reload(instance.fulcrum, instance.config(endpoints, "/fulcrum/other/"), 2);
    etcd.put("/fulcrum/other/a", value_of(a));
    REQUIRE(all_have(instances, {"a", "b"}));
    CHECK(count_of(instance.fulcrum.process().output(), "watching http") == 2);

    instance.fulcrum.process().send_signal(SIGTERM);
    CHECK(instance.fulcrum.process().wait_exit(5s) == 0);
}

// Not a check: the README's convergence figures. Run it with
//   build/tests/integration-tests "[etcd-convergence]"
TEST_CASE("etcd: convergence from a put until three instances route to the new backend",
          "[.][etcd-convergence]") {
    if (!have_etcd()) return;
    Etcd etcd;
    NamedEcho first("first");
    NamedEcho second("second");
    etcd.put(prefix + "x", value_of(first));
    const Instances instances = three_instances("\"" + etcd.url() + "\"");
    REQUIRE(all_have(instances, {"x"}));
    std::vector<double> milliseconds;
    for (int change = 0; change < 50; ++change) {
        const NamedEcho& target = change % 2 == 0 ? second : first;
        const std::string name = change % 2 == 0 ? "second" : "first";
        const auto start = std::chrono::steady_clock::now();
        etcd.put(prefix + "x", value_of(target));
        std::vector<bool> done(instances.size(), false);
        REQUIRE(poll_until(
            [&] {
                for (std::size_t i = 0; i < instances.size(); ++i) {
                    if (!done[i]) done[i] = connect_named(instances[i]->listen).second == name;
                }
                return std::ranges::all_of(done, [](bool d) { return d; });
            },
            10s, 1ms));
        milliseconds.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
    }
    std::ranges::sort(milliseconds);
    const double median = (milliseconds[24] + milliseconds[25]) / 2;
    WARN("convergence over 50 puts, 3 instances: median " << median << " ms, max "
                                                          << milliseconds.back() << " ms");
}
