#pragma once
// Integration-test harness: child processes (the real fulcrum binary and demo
// backends) with captured output, temporary files, free loopback ports, readiness by
// polling, and SHA-256 for comparing large transfers.
//
// Harness failures throw std::runtime_error with a message that includes the child's
// output, so a failing test shows why without digging for log files. Every child is
// SIGKILLed and reaped by its destructor, whether or not the test passed.
//
// Sanitizer reports in a child (ThreadSanitizer and UBSan go on running after one) fail
// the test: the destructor of every ChildProcess scans its output and records a Catch2
// failure with the report (see check_sanitizer_report).

#include <sys/resource.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fulcrum::test {

using namespace std::chrono_literals;

// Polls `condition` every `interval` until it holds (true) or `timeout` passes (false).
bool poll_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 10ms);

// A port for a test's listener (fulcrum's services, its admin endpoint) or a port where
// nothing listens. It is free on 127.0.0.1 now (a bind check), no other call in this
// process returns it again, and the kernel never hands it to an outgoing connection as
// its local port: ports come from outside net.ipv4.ip_local_port_range, walked by a
// counter from an offset derived from the pid, so concurrent test processes start far
// apart. (Port 0 is no answer here: fulcrum's configuration needs the port up front.)
// Throws if the sysctl leaves no range of at least 1000 ports from 10000 up.
std::uint16_t free_port();

// Inodes of the sockets listening on TCP `port` (IPv4 or IPv6), any process: the same
// set before and after a reload says no listening socket was closed or opened.
std::set<std::string> listening_socket_inodes(std::uint16_t port);

// Polls connect() to 127.0.0.1:port until it succeeds or `timeout` passes.
// Each attempt is a real connection: behind a proxy it reaches a backend.
bool wait_port_open(std::uint16_t port, std::chrono::milliseconds timeout);

// A directory made by mkdtemp under /tmp, removed recursively by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(TempDir&& other) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    TempDir& operator=(TempDir&&) = delete;

    const std::string& path() const { return path_; }
    // Writes (replaces) `name` inside the directory; returns its full path.
    std::string write(std::string_view name, std::string_view content) const;

private:
    std::string path_;
};

// Sets environment variables (which children inherit) and restores them when it ends.
class ScopedEnvironment {
public:
    ScopedEnvironment(std::initializer_list<std::pair<const char*, const char*>> variables);
    ~ScopedEnvironment();
    ScopedEnvironment(const ScopedEnvironment&) = delete;
    ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

private:
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The first sanitizer report in `output` (ThreadSanitizer, AddressSanitizer,
// LeakSanitizer, UBSan's "runtime error"), from the start of its line through its
// SUMMARY line or at most a few dozen lines; nullopt when there is none.
std::optional<std::string> sanitizer_report(std::string_view output);

// How many child sanitizer reports could not be recorded as a failure of a running test
// case (say, a child outlived it); main() fails the run when this is not zero.
int unattributed_sanitizer_reports();

// A child process whose stdout and stderr both go to a log file in its own TempDir.
// It starts like it would from a shell: default signal dispositions, no blocked signals,
// none of the test's descriptors; sanitizer options make reports go to stderr (the log). It runs in
// its own process group, and the kernel kills it if the thread that started it exits (so start
// children from the test's own thread, not from a short-lived helper thread).
class ChildProcess {
public:
    struct Options {
        std::optional<rlim_t> max_open_files;  // RLIMIT_NOFILE (soft and hard) for the child
        // A ThreadSanitizer suppressions file for this child instead of the run's (test
        // peers whose libraries TSan cannot follow).
        std::string tsan_suppressions;
    };

    // argv[0] is the program path (no PATH lookup). Throws if it cannot be started.
    explicit ChildProcess(std::vector<std::string> argv, Options options = {});
    // Kills (SIGKILL) and reaps the child if it is still running, then fails the running
    // test case if the output holds a sanitizer report (check_sanitizer_report).
    ~ChildProcess();
    ChildProcess(ChildProcess&& other) noexcept;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ChildProcess& operator=(ChildProcess&&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& log_path() const { return log_path_; }

    // Throws if the child has already been reaped (its pid may belong to another process).
    void send_signal(int signal_number);
    // The exit code, or 128 + signal number if a signal ended it; nullopt on timeout.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    bool running();

    std::string output() const;
    // Records a failure (Catch2 FAIL_CHECK, with the report) in the running test case if
    // the output so far holds a sanitizer report. Returns whether it did; never throws.
    // Checks once: later calls return false.
    bool check_sanitizer_report() noexcept;
    // Polls the output for `needle`; gives up early once the child has exited.
    bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout);

    // Resource use read from /proc; they throw once the child has exited.
    long rss_kib() const;        // VmRSS
    double cpu_seconds() const;  // user + system time
    int fd_count() const;        // open file descriptors
    // Whether the child itself holds a socket listening on TCP `port` (IPv4 or IPv6).
    // Unlike wait_port_open, checking opens no connection.
    bool listening_on(std::uint16_t port) const;

private:
    // Reaps the child if it has exited, without blocking.
    void try_reap();
    std::string proc_path(std::string_view entry) const;

    std::string program_;
    TempDir log_dir_;
    std::string log_path_;
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
    bool sanitizer_checked_ = false;
};

// The real fulcrum binary running `-c <tempdir>/fulcrum.toml` plus extra arguments.
class Fulcrum {
public:
    // Writes the configuration, starts fulcrum and waits until each of `listen_ports`
    // has a listening socket (no probe connection is made, so none reaches a backend).
    // Throws with fulcrum's output if it exits first or is not ready after `timeout`.
    Fulcrum(std::string_view config_toml, const std::vector<std::uint16_t>& listen_ports,
            std::vector<std::string> extra_args = {}, ChildProcess::Options options = {},
            std::chrono::milliseconds timeout = 10s);

    ChildProcess& process() { return process_; }
    const std::string& config_path() const { return config_path_; }
    // Replaces the configuration file, e.g. before sending SIGHUP.
    void write_config(std::string_view config_toml) const;

private:
    TempDir config_dir_;
    std::string config_path_;
    ChildProcess process_;
};

struct RunResult {
    int exit_code;       // as ChildProcess::wait_exit reports it
    std::string output;  // stdout and stderr, interleaved
};

// Runs fulcrum with `args` to completion (for --check, --version, usage errors).
// Throws, with its output, if it is still running after `timeout`.
RunResult run_fulcrum(std::vector<std::string> args, std::chrono::milliseconds timeout = 10s);

// fulcrum-demo-backend (see examples/demo_backend.cpp) on 127.0.0.1.
class DemoBackend {
public:
    // Port 0 lets the backend pick a free port itself, which no other process can take
    // between the choice and the bind. Returns once the backend is listening.
    explicit DemoBackend(std::string name, std::uint16_t port = 0,
                         std::chrono::milliseconds timeout = 10s);

    const std::string& name() const { return name_; }
    std::uint16_t port() const { return port_; }
    std::string address() const;  // "127.0.0.1:PORT", as written in a fulcrum config
    ChildProcess& process() { return process_; }

private:
    std::string name_;
    ChildProcess process_;
    std::uint16_t port_ = 0;
};

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
public:
    Sha256();

    void update(const void* data, std::size_t length);
    void update(std::string_view data) { update(data.data(), data.size()); }
    // Digest of everything so far, as lowercase hex; more data may follow.
    std::string hex() const;

private:
    struct FreeContext {
        void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
    };
    std::unique_ptr<EVP_MD_CTX, FreeContext> context_;
};

std::string sha256_hex(std::string_view data);

}  // namespace fulcrum::test
