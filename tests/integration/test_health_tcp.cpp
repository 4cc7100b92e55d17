// The non-HTTP health checks through the real binary: tcp, send-expect and the ready-made
// redis, postgres and mysql checks, against real servers where they are installed
// (redis-server, PostgreSQL) and against in-test peers that speak the documented bytes.
// Each check's verdict and reason show in the log and /status, and each leaves its
// backend with a clean close.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

const std::string fast_checks = "interval = \"300ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 2";

// Polls fulcrum's output until `needle` occurs `times` times.
bool wait_for_count(Fulcrum& fulcrum, const std::string& needle, std::size_t times,
                    std::chrono::milliseconds timeout) {
    return poll_until([&] { return count_of(fulcrum.process().output(), needle) >= times; },
                      timeout, 20ms);
}

// fulcrum_backend_check_failures_total of `backend` of the service "svc" for `reason`.
double failures(std::uint16_t admin, const std::string& backend, const std::string& reason) {
    return scrape(admin).value("fulcrum_backend_check_failures_total",
                               {{"service", "svc"}, {"backend", backend}, {"reason", reason}});
}

// A peer that plays `script` on each connection, then records how the check left: with a
// FIN after everything the peer sent was read (clean), or otherwise (a reset, say).
struct FakeServer {
    using Script = std::function<void(const Socket&)>;
    explicit FakeServer(Script script)
        : server([this, script = std::move(script)](Socket s) {
              try {
                  script(s);
              } catch (const std::exception&) {
                  ++script_failures;  // not what the check should have sent
                  return;
              }
              ++(s.read_until_closed() == 0 ? clean_closes : unclean_closes);
          }) {}
    std::atomic<int> script_failures{0};
    std::atomic<int> clean_closes{0};
    std::atomic<int> unclean_closes{0};
    ScriptedServer server;  // last: its threads are joined before the counters go
};

void expect_bytes(const Socket& s, const std::string& expected) {
    if (s.read_exact(expected.size()) != expected) throw std::runtime_error("unexpected bytes");
}

// Redis as the check sees it: PING answered, QUIT answered, then the client's FIN.
void fake_redis(const Socket& s) {
    expect_bytes(s, "PING\r\n");
    s.send_all("+PONG\r\n");
    expect_bytes(s, "QUIT\r\n");
    s.send_all("+OK\r\n");
}

// PostgreSQL's SSLRequest (length 8, code 80877103) answered "no TLS".
void fake_postgres(const Socket& s) {
    expect_bytes(s, "\x00\x00\x00\x08\x04\xd2\x16\x2f"s);
    s.send_all("N");
}

// A MySQL 5.7 initial handshake packet, protocol version 10.
void fake_mysql(const Socket& s) {
    s.send_all(
        "\x4a\x00\x00\x00\x0a"
        "5.7.44\x00"
        "\x08\x00\x00\x00\x3b\x5a\x2f\x10\x6e\x5c\x53\x7b\x00\xff\xff\x08\x02\x00\xff\xc1\x15"
        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a\x4c\x30\x0c\x68\x46\x3d\x74\x66\x0b\x11"
        "\x6f\x00mysql_native_password\x00"s);
}

bool installed(const std::string& path) {
    return ::access(path.c_str(), X_OK) == 0;
}

const std::string redis_binary = "/usr/bin/redis-server";

// A real redis-server on 127.0.0.1:port, nothing persisted, DEBUG allowed (redis 7).
class RedisServer {
public:
    explicit RedisServer(std::uint16_t port) : port_(port) { start(); }

    void start() {
        process_.emplace(std::vector<std::string>{
            redis_binary, "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", dir_.path(), "--enable-debug-command", "yes"});
        if (!wait_port_open(port_, 10s)) {
            throw std::runtime_error("redis-server did not start:\n" + process_->output());
        }
    }

    void stop() {
        process_->send_signal(SIGTERM);
        if (!process_->wait_exit(10s)) throw std::runtime_error("redis-server did not stop");
        process_.reset();
    }

    // Has the server stop answering for `seconds`; the reply is left unread.
    Socket sleep(double seconds) const {
        Socket client = connect_to(port_);
        client.send_all("DEBUG SLEEP " + std::to_string(seconds) + "\r\n");
        return client;
    }

    std::uint16_t port() const { return port_; }

private:
    std::uint16_t port_;
    TempDir dir_;
    std::optional<ChildProcess> process_;
};

// The newest PostgreSQL server binaries installed, if any.
std::optional<std::string> postgres_bin_dir() {
    for (int version = 20; version >= 11; --version) {
        const std::string dir = "/usr/lib/postgresql/" + std::to_string(version) + "/bin";
        if (installed(dir + "/postgres") && installed(dir + "/initdb")) return dir;
    }
    return std::nullopt;
}

// PostgreSQL refuses to run as root: as root, run it as the `postgres` user the Debian
// package creates.
std::vector<std::string> as_postgres_user(std::vector<std::string> argv) {
    if (::geteuid() != 0) return argv;
    std::vector<std::string> wrapped{"/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres",
                                     "--clear-groups", "--"};
    wrapped.insert(wrapped.end(), argv.begin(), argv.end());
    return wrapped;
}

// A throwaway PostgreSQL cluster on 127.0.0.1:port, its socket in its own directory.
class PostgresServer {
public:
    PostgresServer(const std::string& bin_dir, std::uint16_t port) {
        const std::string data = dir_.path() + "/data";
        if (::geteuid() == 0) {
            std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
            std::filesystem::create_directory(data);
            run_or_throw({"/usr/bin/chown", "postgres:postgres", data});
        }
        ChildProcess initdb(
            as_postgres_user({bin_dir + "/initdb", "-D", data, "-A", "trust", "-U", "postgres"}));
        if (initdb.wait_exit(120s) != 0) {
            throw std::runtime_error("initdb failed:\n" + initdb.output());
        }
        process_.emplace(as_postgres_user(
            {bin_dir + "/postgres", "-D", data, "-p", std::to_string(port), "-k", dir_.path(), "-c",
             "listen_addresses=127.0.0.1", "-c", "ssl=off", "-c", "log_connections=on"}));
        if (!process_->wait_for_output("database system is ready to accept connections", 60s)) {
            throw std::runtime_error("postgres did not start:\n" + process_->output());
        }
    }

    ChildProcess& process() { return *process_; }

private:
    static void run_or_throw(std::vector<std::string> argv) {
        ChildProcess child(std::move(argv));
        if (child.wait_exit(30s) != 0) throw std::runtime_error(child.output());
    }

    TempDir dir_;
    std::optional<ChildProcess> process_;
};

}  // namespace

TEST_CASE("tcp: an echo backend passes, a closed port goes down as refused", "[health]") {
    EchoServer echo;
    ServiceSpec service = service_to({echo.port(), free_port()});
    service.health = "type = \"tcp\"\n" + fast_checks;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    REQUIRE(fulcrum.process().wait_for_output("backend b1 is down (was up): refused", 5s));
    for (int i = 0; i < 4; ++i) {
        const Transfer t = echo_through(service.listen, 4096);
        CHECK(t.received_hash == t.sent_hash);
    }
    const nlohmann::json status = status_of(admin);
    CHECK(status["services"][0]["health_check_type"] == "tcp");
    const nlohmann::json& up = status["services"][0]["backends"][0];
    CHECK(up["health"] == "up");
    CHECK(up["last_check"]["detail"] == "connected");
    CHECK(up["last_failure"].is_null());
    const nlohmann::json& down = status["services"][0]["backends"][1];
    CHECK(down["health"] == "down");
    CHECK(down["last_failure"]["detail"] == "refused");
    CHECK(failures(admin, "b1", "refused") >= 2);
    CHECK(failures(admin, "b0", "refused") == 0);
    CHECK(fulcrum.process().output().find("backend b0 is down") == std::string::npos);
}

TEST_CASE(
    "redis, postgres and mysql checks pass against peers speaking their protocol, and "
    "leave with a clean close",
    "[health]") {
    FakeServer redis(fake_redis);
    FakeServer postgres(fake_postgres);
    FakeServer mysql(fake_mysql);
    std::vector<ServiceSpec> services;
    for (const auto& [name, port] :
         {std::pair{"redis", redis.server.port()}, std::pair{"postgres", postgres.server.port()},
          std::pair{"mysql", mysql.server.port()}}) {
        ServiceSpec service = service_to({port}, "", name);
        service.health = "type = \"" + std::string(name) + "\"\n" + fast_checks;
        services.push_back(service);
    }
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin(services, admin);

    for (FakeServer* fake : {&redis, &postgres, &mysql}) {
        CHECK(poll_until([&] { return fake->clean_closes.load() >= 3; }, 5s));
    }
    const nlohmann::json status = status_of(admin);
    const std::vector<std::string> details{"PONG", "SSLRequest answered N (no TLS)",
                                           "handshake v10, server 5.7.44"};
    for (std::size_t i = 0; i < services.size(); ++i) {
        const nlohmann::json& service = status["services"][i];
        INFO(service.dump());
        CHECK(service["health_check_type"] == services[i].name);
        CHECK(service["backends"][0]["last_check"]["result"] == "passed");
        CHECK(service["backends"][0]["last_check"]["detail"] == details[i]);
        CHECK(service["backends"][0]["last_failure"].is_null());
    }
    for (FakeServer* fake : {&redis, &postgres, &mysql}) {
        CHECK(fake->script_failures.load() == 0);
        CHECK(fake->unclean_closes.load() == 0);
    }
    CHECK(fulcrum.process().output().find("is down") == std::string::npos);
    if (!installed("/usr/sbin/mariadbd") && !installed("/usr/sbin/mysqld")) {
        WARN(
            "no MySQL or MariaDB server installed: the mysql check was run against a peer "
            "sending a real MySQL 5.7 handshake packet only");
    }
}

TEST_CASE("a backend that never answers fails with timeout and delays no other check", "[health]") {
    auto hang = [](Socket s) { s.read_until_closed(); };
    ScriptedServer h0(hang), h1(hang), h2(hang), h3(hang);
    FakeServer fine(fake_redis);
    ServiceSpec service =
        service_to({h0.port(), h1.port(), h2.port(), h3.port(), fine.server.port()});
    service.health = "type = \"redis\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\nfall = 1";
    Fulcrum fulcrum = start_fulcrum({service});

    // One check after another would take 4 x 400 ms per round.
    CHECK(poll_until([&] { return fine.clean_closes.load() >= 5; }, 5s));
    CHECK(wait_for_count(fulcrum, "is down (was up): timeout", 4, 5s));
    CHECK(fulcrum.process().output().find("backend b4 is down") == std::string::npos);
}

TEST_CASE("wrong bytes and resets take a backend out, with the bytes escaped", "[health]") {
    ScriptedServer wrong([](Socket s) {
        s.read_some();
        s.send_all("HTTP/1.1 400 Bad Request\r\n\r\n");
        s.read_until_closed();
    });
    ScriptedServer resets([](Socket s) {
        s.read_some();
        s.reset();
    });
    ServiceSpec service = service_to({wrong.port(), resets.port()});
    service.health =
        "type = \"send-expect\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"\n" + fast_checks;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    const std::string reason = "unexpected reply: HTTP/1.1 400 Bad Request\\x0d\\x0a\\x0d\\x0a";
    REQUIRE(fulcrum.process().wait_for_output("backend b0 is down (was up): " + reason, 5s));
    CHECK(backend_status(admin, 0)["last_failure"]["detail"] == reason);
    CHECK(fulcrum.process().wait_for_output("backend b1 is down (was up): reset", 5s));
    CHECK(failures(admin, "b0", "response") >= 2);
    CHECK(failures(admin, "b1", "reset") >= 2);
}

TEST_CASE("send-expect starts with the PROXY header and checks health.port", "[health]") {
    FakeServer proxied([](const Socket& s) {
        expect_bytes(s, "PROXY UNKNOWN\r\nHELLO\r\n");
        s.send_all("WELCOME\r\n");
    });
    // Traffic would go to a closed port: only the check's port answers.
    ServiceSpec service = service_to({free_port()}, "send_proxy = \"v1\"");
    service.health =
        "type = \"send-expect\"\nsend = \"HELLO\\r\\n\"\nexpect_hex = "
        "\"57454c434f4d45\"\nsend_proxy = true\nport = " +
        std::to_string(proxied.server.port()) + "\n" + fast_checks;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    REQUIRE(poll_until([&] { return proxied.clean_closes.load() >= 3; }, 5s));
    CHECK(proxied.script_failures.load() == 0);
    CHECK(backend_status(admin, 0)["last_check"]["detail"] == "reply matched");
    CHECK(fulcrum.process().output().find("is down") == std::string::npos);
}

TEST_CASE(
    "a real redis-server: out when paused past the timeout or stopped, back when it "
    "recovers",
    "[health]") {
    if (!installed(redis_binary)) {
        WARN("redis-server is not installed (tests/install-deps.sh installs it); skipping");
        return;
    }
    const std::string health =
        GENERATE(as<std::string>{}, "type = \"redis\"",
                 "type = \"send-expect\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"");
    INFO(health);
    RedisServer redis(free_port());
    ServiceSpec service = service_to({redis.port()});
    service.health = health + "\n" + fast_checks;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);
    REQUIRE(poll_until(
        [&] {
            const nlohmann::json check = backend_status(admin, 0)["last_check"];
            return check.is_object() && check["result"] == "passed";
        },
        5s));

    {
        // DEBUG SLEEP blocks the server: checks time out, then pass once it wakes.
        const Socket sleeper = redis.sleep(2.5);
        REQUIRE(wait_for_count(fulcrum, "backend b0 is down (was up): timeout", 1, 5s));
        REQUIRE(wait_for_count(fulcrum, "backend b0 is up (was down)", 1, 10s));
    }
    redis.stop();
    REQUIRE(wait_for_count(fulcrum, "backend b0 is down (was up): refused", 1, 5s));
    CHECK(scrape(admin).value("fulcrum_backend_healthy", {{"service", "svc"}, {"backend", "b0"}}) ==
          0);
    CHECK(failures(admin, "b0", "timeout") >= 2);
    CHECK(failures(admin, "b0", "refused") >= 2);
    redis.start();
    REQUIRE(wait_for_count(fulcrum, "backend b0 is up (was down)", 2, 5s));
    CHECK(backend_status(admin, 0)["last_failure"]["detail"] == "refused");
}

TEST_CASE(
    "a real PostgreSQL server: SSLRequest answered, no error in its log, refused once "
    "stopped",
    "[health]") {
    const std::optional<std::string> bin_dir = postgres_bin_dir();
    if (!bin_dir) {
        WARN(
            "no PostgreSQL server installed (Debian: postgresql); the postgres check is "
            "covered by a peer speaking its documented bytes; skipping");
        return;
    }
    const std::uint16_t port = free_port();
    PostgresServer postgres(*bin_dir, port);
    ServiceSpec service = service_to({port});
    service.health = "type = \"postgres\"\n" + fast_checks;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    REQUIRE(poll_until(
        [&] { return count_of(postgres.process().output(), "connection received") >= 3; }, 10s));
    CHECK(backend_status(admin, 0)["last_check"]["detail"] == "SSLRequest answered N (no TLS)");
    const std::string log = postgres.process().output();
    INFO(log);
    CHECK(log.find("incomplete startup packet") == std::string::npos);
    CHECK(log.find("could not receive data") == std::string::npos);
    CHECK(log.find("FATAL") == std::string::npos);

    postgres.process().send_signal(SIGINT);  // fast shutdown
    REQUIRE(postgres.process().wait_exit(30s).has_value());
    CHECK(fulcrum.process().wait_for_output("backend b0 is down (was up): refused", 5s));
}
