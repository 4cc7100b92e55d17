#include "harness.hpp"

#include "net.hpp"

#if !defined(FULCRUM_BINARY) || !defined(DEMO_BACKEND_BINARY)
#error "define FULCRUM_BINARY and DEMO_BACKEND_BINARY (tests/meson.build does)"
#endif

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>

extern char** environ;

namespace fulcrum::test {

namespace {

// The first line of every sanitizer report contains one of these.
constexpr std::string_view sanitizer_markers[] = {
    "WARNING: ThreadSanitizer:", "ERROR: AddressSanitizer:", "ERROR: LeakSanitizer:",
    ": runtime error:",  // UBSan
};

std::atomic<int> unattributed_reports{0};

std::string errno_text(std::string_view what) {
    return std::string(what) + ": " + std::strerror(errno);
}

// Closes its file descriptor on every path out of a scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() { reset(); }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    int fd_;
};

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The ports free_port hands out: the larger of the two stretches of [10000, 65535] that
// lie outside the kernel's range for outgoing connections' local ports.
struct PortRange {
    std::uint16_t first;
    std::uint16_t last;
};

PortRange test_port_range() {
    constexpr unsigned lowest = 10000;  // below: well-known and registered services
    constexpr unsigned highest = 65535;
    constexpr unsigned enough = 1000;
    const char* sysctl = "/proc/sys/net/ipv4/ip_local_port_range";
    unsigned ephemeral_first = 32768;  // Linux's default when the file cannot be read
    unsigned ephemeral_last = 60999;
    std::ifstream(sysctl) >> ephemeral_first >> ephemeral_last;
    const unsigned below = ephemeral_first > lowest ? ephemeral_first - lowest : 0;
    const unsigned above = highest > ephemeral_last ? highest - ephemeral_last : 0;
    if (std::max(below, above) < enough) {
        throw std::runtime_error(std::string(sysctl) + " is " + std::to_string(ephemeral_first) +
                                 " " + std::to_string(ephemeral_last) +
                                 ": it leaves the tests no range of " + std::to_string(enough) +
                                 " ports outside it from " + std::to_string(lowest) + " up");
    }
    if (below >= above) {
        return {static_cast<std::uint16_t>(lowest),
                static_cast<std::uint16_t>(ephemeral_first - 1)};
    }
    return {static_cast<std::uint16_t>(ephemeral_last + 1), static_cast<std::uint16_t>(highest)};
}

// Whether 127.0.0.1:port can be bound now. Without SO_REUSEADDR a bind fails on a port
// that any socket holds, a TIME_WAIT connection or a listener on 0.0.0.0 included.
bool bindable(std::uint16_t port) {
    const FileDescriptor socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (socket.get() < 0) throw std::runtime_error(errno_text("free_port: socket"));
    const sockaddr_in address = loopback(port);
    return ::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

// The test's environment with one change: each sanitizer writes its reports to stderr,
// which is the child's log, whatever log_path the environment asks for (the last
// occurrence of an option wins); and `tsan_suppressions`, if any, replaces the run's.
std::vector<std::string> child_environment(const std::string& tsan_suppressions) {
    constexpr std::string_view option_variables[] = {"ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS",
                                                     "UBSAN_OPTIONS"};
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) environment.emplace_back(*entry);
    for (const std::string_view variable : option_variables) {
        const std::string prefix = std::string(variable) + "=";
        auto it = std::find_if(environment.begin(), environment.end(),
                               [&](const std::string& e) { return e.starts_with(prefix); });
        if (it == environment.end()) it = environment.insert(environment.end(), prefix);
        *it += std::string(it->size() > prefix.size() ? ":" : "") + "log_path=stderr";
        if (variable == "TSAN_OPTIONS" && !tsan_suppressions.empty()) {
            *it += ":suppressions=" + tsan_suppressions;
        }
    }
    return environment;
}

std::string describe(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& arg : argv) text += (text.empty() ? "" : " ") + arg;
    return text;
}

// What the forked child reports through a close-on-exec pipe when it cannot exec;
// end of file on that pipe means the exec succeeded.
struct StartFailure {
    enum Stage : int { set_open_files_limit, exec } stage;
    int error;
};

// Closes every descriptor from 3 up except `keep`. Runs between fork and exec, so only
// async-signal-safe calls; the loop covers kernels without close_range (before 5.9).
void close_inherited_descriptors(int keep, long max_fd) {
    const bool below_closed = keep == 3 || ::close_range(3, keep - 1, 0) == 0;
    if (below_closed && ::close_range(keep + 1, ~0U, 0) == 0) return;
    for (int fd = 3; fd < max_fd; ++fd) {
        if (fd != keep) ::close(fd);
    }
}

[[noreturn]] void run_child(const std::vector<char*>& argv, const std::vector<char*>& envp,
                            int log_fd, int report_fd, const std::optional<rlimit>& open_files,
                            pid_t parent, long max_fd) {
    // Die with the test process even when it crashes or aborts (ASan) and no
    // destructor runs. Checking the parent afterwards closes the race with its exit.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);

    // Its own process group, so the destructor can kill whatever it started too.
    ::setpgid(0, 0);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // Sockets the test holds must not stay open in the child: a test closing its end
    // of a connection would otherwise never deliver the FIN.
    close_inherited_descriptors(report_fd, max_fd);

    // exec keeps ignored signals ignored and the signal mask; the test process ignores
    // SIGPIPE, and the child must start the way it would from a shell.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
        ::sigaction(signal_number, &default_action, nullptr);
    }
    sigset_t no_signals;
    ::sigemptyset(&no_signals);
    ::sigprocmask(SIG_SETMASK, &no_signals, nullptr);

    StartFailure failure{StartFailure::set_open_files_limit, 0};
    if (!open_files || ::setrlimit(RLIMIT_NOFILE, &*open_files) == 0) {
        ::execve(argv[0], argv.data(), envp.data());
        failure.stage = StartFailure::exec;
    }
    failure.error = errno;
    [[maybe_unused]] const auto written = ::write(report_fd, &failure, sizeof failure);
    ::_exit(127);
}

int decode_wait_status(int status) {
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

std::string with_output(std::string message, const ChildProcess& child) {
    return message + "\n--- output of pid " + std::to_string(child.pid()) + " ---\n" +
           child.output() + "--- end of output ---";
}

std::vector<std::string> fulcrum_argv(const std::string& config_path,
                                      std::vector<std::string> extra_args) {
    std::vector<std::string> argv{FULCRUM_BINARY, "-c", config_path};
    std::move(extra_args.begin(), extra_args.end(), std::back_inserter(argv));
    return argv;
}

}  // namespace

// /proc/net/tcp and tcp6 lines read: sl local_address(hex ip:hex port) rem_address st ... uid
// timeout inode.
std::set<std::string> listening_socket_inodes(std::uint16_t port) {
    constexpr std::string_view listen_state = "0A";
    std::set<std::string> inodes;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::istringstream lines(read_text_file(table));
        std::string line;
        std::getline(lines, line);  // column titles
        while (std::getline(lines, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
            fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
                timeout >> inode;
            const auto colon = local.rfind(':');
            if (state != listen_state || colon == std::string::npos) continue;
            if (std::stoul(local.substr(colon + 1), nullptr, 16) == port) inodes.insert(inode);
        }
    }
    return inodes;
}

ScopedEnvironment::ScopedEnvironment(
    std::initializer_list<std::pair<const char*, const char*>> variables) {
    for (const auto& variable : variables) {
        const char* old = std::getenv(variable.first);
        saved_.emplace_back(variable.first,
                            old != nullptr ? std::optional<std::string>(old) : std::nullopt);
        ::setenv(variable.first, variable.second, 1);
    }
}

ScopedEnvironment::~ScopedEnvironment() {
    for (const auto& variable : saved_) {
        if (variable.second) {
            ::setenv(variable.first.c_str(), variable.second->c_str(), 1);
        } else {
            ::unsetenv(variable.first.c_str());
        }
    }
}

std::optional<std::string> sanitizer_report(std::string_view output) {
    constexpr std::size_t max_lines = 40;
    std::size_t found = std::string_view::npos;
    std::size_t reports = 0;
    for (const std::string_view marker : sanitizer_markers) {
        for (auto at = output.find(marker); at != std::string_view::npos;
             at = output.find(marker, at + 1)) {
            ++reports;
            found = std::min(found, at);
        }
    }
    if (found == std::string_view::npos) return std::nullopt;
    const std::size_t line_start = output.rfind('\n', found);
    std::size_t begin = line_start == std::string_view::npos ? 0 : line_start + 1;
    std::size_t end = begin;
    for (std::size_t lines = 0; lines < max_lines && end < output.size(); ++lines) {
        const std::size_t line_end = output.find('\n', end);
        const std::size_t next = line_end == std::string_view::npos ? output.size() : line_end + 1;
        const bool summary = output.substr(end, next - end).starts_with("SUMMARY:");
        end = next;
        if (summary) break;
    }
    std::string excerpt(output.substr(begin, end - begin));
    if (reports > 1) {
        excerpt += "(" + std::to_string(reports) + " sanitizer reports in this output)\n";
    }
    return excerpt;
}

int unattributed_sanitizer_reports() {
    return unattributed_reports.load();
}

bool poll_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(interval);
    }
    return true;
}

std::uint16_t free_port() {
    static const PortRange range = test_port_range();
    const std::uint32_t size = range.last - range.first + 1U;
    // A large prime spreads the starting points of processes over the range.
    static std::atomic<std::uint32_t> next{static_cast<std::uint32_t>(::getpid()) * 7919U};
    for (std::uint32_t attempt = 0; attempt < size; ++attempt) {
        const auto port = static_cast<std::uint16_t>(range.first + next++ % size);
        if (bindable(port)) return port;
    }
    throw std::runtime_error("free_port: every port in " + std::to_string(range.first) + "-" +
                             std::to_string(range.last) + " is in use");
}

bool wait_port_open(std::uint16_t port, std::chrono::milliseconds timeout) {
    return poll_until(
        [port] {
            const FileDescriptor socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            const sockaddr_in address = loopback(port);
            return socket.get() >= 0 &&
                   ::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address),
                             sizeof address) == 0;
        },
        timeout);
}

// --- TempDir ---

TempDir::TempDir() {
    std::string pattern = "/tmp/fulcrum-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error(errno_text("mkdtemp " + pattern));
    }
    path_ = pattern;
}

TempDir::~TempDir() {
    if (path_.empty()) return;  // moved from
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

std::string TempDir::write(std::string_view name, std::string_view content) const {
    const std::string path = path_ + "/" + std::string(name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) throw std::runtime_error("cannot write " + path);
    return path;
}

// --- ChildProcess ---

ChildProcess::ChildProcess(std::vector<std::string> argv, Options options)
    : program_(describe(argv)), log_path_(log_dir_.path() + "/output.log") {
    if (argv.empty()) throw std::runtime_error("ChildProcess: empty argv");

    // Everything the child needs is prepared here: between fork and exec it may only
    // make async-signal-safe calls.
    std::vector<char*> raw_argv;
    for (auto& arg : argv) raw_argv.push_back(arg.data());
    raw_argv.push_back(nullptr);
    std::vector<std::string> environment = child_environment(options.tsan_suppressions);
#ifdef FULCRUM_TEST_PRELOAD
    // The ThreadSanitizer build's close shim (tests/support/tsan_libuv_close.cpp) goes into
    // fulcrum this way rather than being linked into the product binary.
    // (A copy of the binary too: the upgrade tests run one.)
    if (std::filesystem::path(argv.front()).filename() == "fulcrum") {
        environment.push_back("LD_PRELOAD=" FULCRUM_TEST_PRELOAD);
    }
#endif
    std::vector<char*> envp;
    for (auto& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);

    std::optional<rlimit> open_files;
    if (options.max_open_files) {
        // Soft and hard: fulcrum raises a soft limit that the hard one allows.
        const rlim_t wanted = *options.max_open_files;
        open_files = rlimit{wanted, wanted};
    }
    const long max_fd = ::sysconf(_SC_OPEN_MAX);

    const FileDescriptor log(
        ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
    if (log.get() < 0) throw std::runtime_error(errno_text("open " + log_path_));
    int report_pipe[2];
    if (::pipe2(report_pipe, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
    const FileDescriptor report_read(report_pipe[0]);
    FileDescriptor report_write(report_pipe[1]);

    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(errno_text("fork"));
    if (pid_ == 0)
        run_child(raw_argv, envp, log.get(), report_write.get(), open_files, parent, max_fd);

    ::setpgid(pid_, pid_);  // also here: a kill of the group may come before the child runs
    report_write.reset();   // the child holds the only write end now: EOF means exec'd

    StartFailure failure{};
    ssize_t got = 0;
    do {
        got = ::read(report_read.get(), &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    if (got == 0) return;

    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    const char* stage = failure.stage == StartFailure::exec ? "exec" : "setrlimit(RLIMIT_NOFILE)";
    throw std::runtime_error("cannot start " + program_ + ": " + stage + ": " +
                             std::strerror(failure.error));
}

ChildProcess::~ChildProcess() {
    if (pid_ <= 0) return;  // moved from, or never started
    if (!exit_code_) {
        ::kill(-pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    check_sanitizer_report();
}

bool ChildProcess::check_sanitizer_report() noexcept {
    if (std::exchange(sanitizer_checked_, true)) return false;
    try {
        const std::optional<std::string> report = sanitizer_report(output());
        if (!report) return false;
        const std::string message = "sanitizer report in the output of " + program_ + " (pid " +
                                    std::to_string(pid_) + "):\n" + *report;
        try {
            // Never throws from here unless Catch2 is aborting the run (-a, -x), and then
            // the failure has been counted before the throw.
            FAIL_CHECK(message);
        } catch (const Catch::TestFailureException&) {
        } catch (...) {
            // No test case is running.
            ++unattributed_reports;
            std::cerr << message << std::flush;
        }
        return true;
    } catch (...) {
        return false;  // the log cannot be read: nothing to report
    }
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : program_(std::move(other.program_)),
      log_dir_(std::move(other.log_dir_)),
      log_path_(std::move(other.log_path_)),
      pid_(std::exchange(other.pid_, -1)),
      exit_code_(other.exit_code_),
      sanitizer_checked_(other.sanitizer_checked_) {}

void ChildProcess::try_reap() {
    if (pid_ <= 0 || exit_code_) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) exit_code_ = decode_wait_status(status);
}

void ChildProcess::send_signal(int signal_number) {
    try_reap();
    if (exit_code_) {
        throw std::runtime_error(with_output(
            "cannot signal " + program_ + ": it exited with " + std::to_string(*exit_code_),
            *this));
    }
    if (::kill(pid_, signal_number) != 0) throw std::runtime_error(errno_text("kill"));
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
    poll_until([this] { return !running(); }, timeout);
    return exit_code_;
}

bool ChildProcess::running() {
    try_reap();
    return !exit_code_;
}

std::string ChildProcess::output() const {
    return read_text_file(log_path_);
}

bool ChildProcess::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) {
    bool found = false;
    poll_until(
        [&] {
            // Liveness first: output read after the exit is complete.
            const bool alive = running();
            found = output().find(needle) != std::string::npos;
            return found || !alive;
        },
        timeout);
    return found;
}

std::string ChildProcess::proc_path(std::string_view entry) const {
    if (exit_code_) {
        throw std::runtime_error(program_ + " has exited (" + std::to_string(*exit_code_) +
                                 "): no /proc entry");
    }
    return "/proc/" + std::to_string(pid_) + "/" + std::string(entry);
}

long ChildProcess::rss_kib() const {
    std::istringstream status(read_text_file(proc_path("status")));
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    throw std::runtime_error("no VmRSS for " + program_ + " (a zombie?)");
}

double ChildProcess::cpu_seconds() const {
    // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
    const std::string stat = read_text_file(proc_path("stat"));
    std::istringstream fields(stat.substr(stat.rfind(')') + 1));
    std::string field;
    for (int number = 3; number < 14; ++number) fields >> field;
    unsigned long long user_ticks = 0;
    unsigned long long system_ticks = 0;
    fields >> user_ticks >> system_ticks;
    return static_cast<double>(user_ticks + system_ticks) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int ChildProcess::fd_count() const {
    const std::filesystem::directory_iterator entries(proc_path("fd"));
    return static_cast<int>(std::distance(begin(entries), end(entries)));
}

bool ChildProcess::listening_on(std::uint16_t port) const {
    const std::set<std::string> inodes = listening_socket_inodes(port);
    if (inodes.empty()) return false;
    std::error_code error;  // descriptors may close while we look
    for (const auto& entry : std::filesystem::directory_iterator(proc_path("fd"), error)) {
        const std::string target = std::filesystem::read_symlink(entry.path(), error).string();
        // A socket's link reads "socket:[INODE]".
        if (target.rfind("socket:[", 0) == 0 &&
            inodes.count(target.substr(8, target.size() - 9)) > 0) {
            return true;
        }
    }
    return false;
}

// --- Fulcrum ---

Fulcrum::Fulcrum(std::string_view config_toml, const std::vector<std::uint16_t>& listen_ports,
                 std::vector<std::string> extra_args, ChildProcess::Options options,
                 std::chrono::milliseconds timeout)
    : config_path_(config_dir_.write("fulcrum.toml", config_toml)),
      process_(fulcrum_argv(config_path_, std::move(extra_args)), options) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const std::uint16_t port : listen_ports) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        const bool settled =
            poll_until([&] { return !process_.running() || process_.listening_on(port); }, left);
        const std::string where = "listening on port " + std::to_string(port);
        if (!process_.running()) {
            throw std::runtime_error(with_output("fulcrum exited with " +
                                                     std::to_string(*process_.wait_exit(0ms)) +
                                                     " before " + where,
                                                 process_));
        }
        if (!settled) {
            throw std::runtime_error(with_output(
                "fulcrum not " + where + " after " + std::to_string(timeout.count()) + " ms",
                process_));
        }
    }
}

void Fulcrum::write_config(std::string_view config_toml) const {
    config_dir_.write("fulcrum.toml", config_toml);
}

RunResult run_fulcrum(std::vector<std::string> args, std::chrono::milliseconds timeout) {
    args.insert(args.begin(), FULCRUM_BINARY);
    ChildProcess fulcrum(args);
    const std::optional<int> exit_code = fulcrum.wait_exit(timeout);
    if (!exit_code) {
        throw std::runtime_error(with_output(
            describe(args) + " still running after " + std::to_string(timeout.count()) + " ms",
            fulcrum));
    }
    return {*exit_code, fulcrum.output()};
}

// --- DemoBackend ---

DemoBackend::DemoBackend(std::string name, std::uint16_t port, std::chrono::milliseconds timeout)
    : name_(std::move(name)),
      process_({DEMO_BACKEND_BINARY, "--port", std::to_string(port), "--name", name_},
               {.max_open_files = std::nullopt,
                .tsan_suppressions = FULCRUM_SOURCE_ROOT "/tests/tsan-demo-backend.supp"}) {
    // The backend prints this line, in one write, once it is listening.
    constexpr std::string_view ready = "listening on ";
    if (!process_.wait_for_output(ready, timeout)) {
        throw std::runtime_error(
            with_output("demo backend '" + name_ + "' did not start listening", process_));
    }
    const std::string output = process_.output();
    const std::size_t line_end = output.find('\n', output.find(ready));
    const std::string line = output.substr(0, line_end);
    port_ = static_cast<std::uint16_t>(std::stoul(line.substr(line.rfind(':') + 1)));
}

std::string DemoBackend::address() const {
    return "127.0.0.1:" + std::to_string(port_);
}

// --- Sha256 ---

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("EVP SHA-256 init failed");
    }
}

void Sha256::update(const void* data, std::size_t length) {
    if (EVP_DigestUpdate(context_.get(), data, length) != 1) {
        throw std::runtime_error("EVP SHA-256 update failed");
    }
}

std::string Sha256::hex() const {
    // Finalize a copy, so this object can keep taking data.
    const std::unique_ptr<EVP_MD_CTX, FreeContext> copy(EVP_MD_CTX_new());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!copy || EVP_MD_CTX_copy_ex(copy.get(), context_.get()) != 1 ||
        EVP_DigestFinal_ex(copy.get(), digest, &length) != 1) {
        throw std::runtime_error("EVP SHA-256 final failed");
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < length; ++i) {
        text += digits[digest[i] >> 4];
        text += digits[digest[i] & 0x0f];
    }
    return text;
}

std::string sha256_hex(std::string_view data) {
    Sha256 hash;
    hash.update(data);
    return hash.hex();
}

}  // namespace fulcrum::test
