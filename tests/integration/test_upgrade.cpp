// SIGUSR2, the binary upgrade: the binary on disk takes over the listening sockets while
// clients keep connecting, and a new process that cannot start leaves the old one serving.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "net.hpp"
#include "notify_socket.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t MiB = 1024 * 1024;

// The pid in fulcrum's "upgrade: the new process (pid N) serves" line; 0 before it.
pid_t new_process_pid(const ChildProcess& old) {
    const std::string output = old.output();
    const std::string marker = "upgrade: the new process (pid ";
    const std::size_t at = output.find(marker);
    if (at == std::string::npos) return 0;
    return static_cast<pid_t>(std::stol(output.substr(at + marker.size())));
}

// The new process outlives the old one, its parent. As the test's subreaper it becomes
// the test's child once the old one exits: then it can be waited for, and it is stopped
// here (SIGTERM, then SIGKILL) whatever the test's outcome.
class Successor {
public:
    explicit Successor(pid_t pid) : pid_(pid) {}
    ~Successor() {
        if (pid_ <= 0 || reaped_) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    Successor(const Successor&) = delete;
    Successor& operator=(const Successor&) = delete;

    // Sends SIGTERM and returns its exit code, or nullopt if it is still running after
    // `timeout`.
    std::optional<int> stop(std::chrono::milliseconds timeout) {
        ::kill(pid_, SIGTERM);
        std::optional<int> code;
        poll_until(
            [&] {
                int status = 0;
                if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
                reaped_ = true;
                code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
                return true;
            },
            timeout);
        return code;
    }

private:
    pid_t pid_;
    bool reaped_ = false;
};

// A copy of the fulcrum binary in `dir`, so that the test can replace it "on disk".
std::string copy_binary(const TempDir& dir) {
    const std::string path = dir.path() + "/fulcrum";
    std::filesystem::copy_file(FULCRUM_BINARY, path);
    return path;
}

// Replaces `path` as a package upgrade does (a new file renamed over it): a script that
// says it ran, then runs the real binary with the same arguments.
void replace_binary(const TempDir& dir, const std::string& path) {
    const std::string next =
        dir.write("fulcrum.next", "#!/bin/sh\necho 'the binary on disk ran' >&2\nexec " +
                                      std::string(FULCRUM_BINARY) + " \"$@\"\n");
    ::chmod(next.c_str(), 0755);
    std::filesystem::rename(next, path);
}

// Short connections, each checked byte for byte, from a few threads until told to stop.
class ConnectLoop {
public:
    ConnectLoop(std::uint16_t port, int threads) {
        for (int t = 0; t < threads; ++t) {
            threads_.emplace_back([this, port, t] {
                for (int i = 0; !done_.load(); ++i) {
                    const std::string message =
                        "ping " + std::to_string(t) + "/" + std::to_string(i);
                    try {
                        Socket socket = connect_to(port, 10);
                        socket.send_all(message);
                        socket.shutdown_write();
                        if (socket.read_to_eof() == message) {
                            ++served_;
                            continue;
                        }
                    } catch (const std::exception& e) {
                        const std::lock_guard lock(mutex_);
                        if (first_error_.empty()) first_error_ = e.what();
                    }
                    ++failed_;
                }
            });
        }
    }
    ~ConnectLoop() { stop(); }

    void stop() {
        done_ = true;
        for (auto& thread : threads_) {
            if (thread.joinable()) thread.join();
        }
    }
    int served() const { return served_.load(); }
    int failed() const { return failed_.load(); }
    std::string first_error() {
        const std::lock_guard lock(mutex_);
        return first_error_;
    }

private:
    std::atomic<bool> done_{false};
    std::atomic<int> served_{0};
    std::atomic<int> failed_{0};
    std::mutex mutex_;
    std::string first_error_;
    std::vector<std::thread> threads_;
};

}  // namespace

TEST_CASE(
    "SIGUSR2 under a connect loop: the binary on disk takes over the same sockets, "
    "no connection fails, a long transfer completes byte-exact",
    "[upgrade]") {
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    EchoServer backend;
    const ServiceSpec service = service_to({backend.port()});
    const std::uint16_t admin_port = free_port();
    TempDir dir;
    const std::string binary = copy_binary(dir);
    const std::string config =
        dir.write("fulcrum.toml", with_admin(config_for({service}), admin_port));
    ChildProcess old({binary, "-c", config});
    REQUIRE(poll_until([&] { return old.listening_on(service.listen); }, 10s));
    REQUIRE(poll_until([&] { return old.listening_on(admin_port); }, 10s));
    const auto sockets_before = listening_socket_inodes(service.listen);
    const auto admin_sockets_before = listening_socket_inodes(admin_port);

    // A long transfer on the old process: half before the upgrade, half after.
    Socket long_session = connect_to(service.listen);
    Sha256 sent;
    Sha256 received;
    std::size_t received_bytes = 0;
    std::thread reader([&] {
        for (;;) {
            const std::string chunk = long_session.read_some();
            if (chunk.empty()) return;
            received.update(chunk);
            received_bytes += chunk.size();
        }
    });
    const std::string half = pattern(16 * MiB, 7);
    long_session.send_all(half);
    sent.update(half);

    ConnectLoop load(service.listen, 4);
    REQUIRE(poll_until([&] { return load.served() >= 1000; }, 60s));
    replace_binary(dir, binary);
    old.send_signal(SIGUSR2);
    REQUIRE(old.wait_for_output("upgrade: the new process (pid ", 30s));
    Successor successor(new_process_pid(old));
    // Connections go on across the handover, and after it to the new process alone.
    const int at_handover = load.served();
    CHECK(poll_until([&] { return load.served() >= std::max(5000, at_handover + 1000); }, 120s));
    load.stop();
    INFO("first failure: " << load.first_error());
    CHECK(load.failed() == 0);
    CHECK(load.served() >= 5000);

    const std::string rest = pattern(16 * MiB, 8);
    long_session.send_all(rest);
    sent.update(rest);
    long_session.shutdown_write();
    reader.join();
    CHECK(received_bytes == 32 * MiB);
    CHECK(received.hex() == sent.hex());
    // Its last session over, the old process exits.
    CHECK(old.wait_exit(10s) == std::optional<int>(0));

    const std::string output = old.output();
    CHECK(output.find("the binary on disk ran") != std::string::npos);
    CHECK(output.find("sockets handed over") != std::string::npos);
    // The same listening sockets throughout: none closed, none opened.
    CHECK(listening_socket_inodes(service.listen) == sockets_before);
    CHECK(listening_socket_inodes(admin_port) == admin_sockets_before);
    Socket admin = connect_to(admin_port);
    CHECK(http_get(admin, "/healthz").find("ok") != std::string::npos);
    CHECK(echo_through(service.listen, 64 * 1024).received == 64 * 1024);
    CHECK(successor.stop(10s) == std::optional<int>(0));
    CHECK(output.find("upgrade failed") == std::string::npos);
}

TEST_CASE(
    "SIGUSR2 with an invalid configuration leaves the old process serving; a fixed one "
    "then upgrades",
    "[upgrade]") {
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    NamedEcho a("a");
    const ServiceSpec service = service_to({a.port()});
    Fulcrum fulcrum = start_fulcrum({service});
    const auto sockets_before = listening_socket_inodes(service.listen);
    const std::string valid = config_for({service});

    fulcrum.write_config(valid + "\n[[service]]\nname = 3\n");
    fulcrum.process().send_signal(SIGUSR2);
    REQUIRE(fulcrum.process().wait_for_output("upgrade failed", 30s));
    // The new process named the error, in the log of the old one (the same stderr).
    CHECK(fulcrum.process().output().find(".toml:18:8: service[1].name") != std::string::npos);
    CHECK(fulcrum.process().running());
    CHECK(listening_socket_inodes(service.listen) == sockets_before);
    for (int i = 0; i < 4; ++i) CHECK(connect_named(service.listen).second == "a");

    fulcrum.write_config(valid);
    fulcrum.process().send_signal(SIGUSR2);
    REQUIRE(fulcrum.process().wait_for_output("upgrade: the new process (pid ", 30s));
    Successor successor(new_process_pid(fulcrum.process()));
    CHECK(fulcrum.process().wait_exit(10s) == std::optional<int>(0));
    CHECK(connect_named(service.listen).second == "a");
    CHECK(listening_socket_inodes(service.listen) == sockets_before);
    CHECK(successor.stop(10s) == std::optional<int>(0));
}

TEST_CASE(
    "SIGUSR2 under systemd: MAINPID= names the new process, the old one says no more, "
    "and the watchdog pings go on",
    "[upgrade][systemd]") {
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    NamedEcho a("a");
    const ServiceSpec service = service_to({a.port()});
    const NotifySocket notify;
    const ScopedEnvironment environment{{"NOTIFY_SOCKET", notify.path().c_str()},
                                        {"WATCHDOG_USEC", "400000"}};
    Fulcrum fulcrum(config_for({service}), {service.listen});
    REQUIRE(notify.wait_for("READY=1", 10s));

    fulcrum.process().send_signal(SIGUSR2);
    if (!fulcrum.process().wait_for_output("upgrade: the new process (pid ", 30s)) {
        FAIL(fulcrum.process().output());
    }
    Successor successor(new_process_pid(fulcrum.process()));
    const std::string main_pid = "MAINPID=" + std::to_string(new_process_pid(fulcrum.process()));
    std::vector<std::string> before;
    CHECK(notify.wait_for(main_pid, 10s, &before));
    CHECK(fulcrum.process().wait_exit(10s) == std::optional<int>(0));
    // The old process drained without STOPPING=1, which would stop the unit.
    std::vector<std::string> after;
    CHECK(notify.wait_for("WATCHDOG=1", 5s, &after));
    for (const auto& messages : {before, after}) {
        for (const std::string& message : messages)
            CHECK(message.find("STOPPING=1") == std::string::npos);
    }
    CHECK(connect_named(service.listen).second == "a");
    CHECK(notify.wait_for("WATCHDOG=1", 5s));
    CHECK(successor.stop(10s) == std::optional<int>(0));
}
