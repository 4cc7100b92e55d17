#include "fulcrum/upgrade/binary_upgrade.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <climits>
#include <cstring>
#include <string_view>

#include "fulcrum/upgrade/inherited_sockets.hpp"

extern char** environ;

namespace fulcrum {

namespace {

// Strings kept alive for a char** argument list ending in nullptr.
std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> list;
    for (std::string& s : strings) list.push_back(s.data());
    list.push_back(nullptr);
    return list;
}

}  // namespace

BinaryUpgrade::Command BinaryUpgrade::current_command(int argc, char** argv) {
    Command command;
    char path[PATH_MAX];
    std::size_t length = sizeof path;
    if (int rc = uv_exepath(path, &length); rc == 0) {
        command.executable.assign(path, length);
    } else {
        spdlog::warn("uv_exepath: {}; an upgrade runs {}", uv_strerror(rc), argv[0]);
        command.executable = argv[0];
    }
    command.arguments.assign(argv, argv + argc);
    return command;
}

BinaryUpgrade::BinaryUpgrade(uv_loop_t* loop, Command command, std::function<void(pid_t)> on_ready)
    : loop_(loop), command_(std::move(command)), on_ready_(std::move(on_ready)) {
    process_.data = this;
    ready_pipe_.data = this;
}

BinaryUpgrade::~BinaryUpgrade() {
    close();
}

void BinaryUpgrade::close() {
    if (pipe_open_) close_handle(reinterpret_cast<uv_handle_t*>(&ready_pipe_), pipe_open_);
    if (process_open_) close_handle(reinterpret_cast<uv_handle_t*>(&process_), process_open_);
}

void BinaryUpgrade::close_handle(uv_handle_t* handle, bool& open) {
    open = false;
    ++closing_;
    uv_close(handle,
             [](uv_handle_t* closed) { --static_cast<BinaryUpgrade*>(closed->data)->closing_; });
}

bool BinaryUpgrade::start(const std::vector<HandedSocket>& sockets) {
    if (process_open_ || pipe_open_ || closing_ > 0) {
        spdlog::warn("SIGUSR2: an upgrade is already under way; ignored");
        return false;
    }
    std::vector<std::string> environment;
    std::string keys;
    for (const auto& [key, fd] : sockets) keys += (keys.empty() ? "" : "\n") + key;
    const int ready_fd = first_handed_descriptor + static_cast<int>(sockets.size());
    for (char** variable = environ; *variable != nullptr; ++variable) {
        const std::string_view entry(*variable);
        // systemd's WATCHDOG_PID names this process: with it, the new one would think
        // the watchdog is not its own and stop the pings systemd expects of it.
        if (entry.starts_with("FULCRUM_UPGRADE_") || entry.starts_with("WATCHDOG_PID=")) continue;
        environment.emplace_back(entry);
    }
    environment.push_back(fmt::format("{}={}", upgrade_sockets_variable, keys));
    environment.push_back(fmt::format("{}={}", upgrade_ready_variable, ready_fd));
    std::vector<std::string> arguments = command_.arguments;
    std::vector<char*> argv = pointers(arguments);
    std::vector<char*> envp = pointers(environment);

    std::vector<uv_stdio_container_t> stdio(static_cast<std::size_t>(ready_fd) + 1);
    // Its output goes where this one's does (the journal, a log file); nothing is read
    // from stdin.
    stdio[0].flags = UV_IGNORE;
    for (int fd = 1; fd < first_handed_descriptor; ++fd) {
        stdio[static_cast<std::size_t>(fd)].flags = UV_INHERIT_FD;
        stdio[static_cast<std::size_t>(fd)].data.fd = fd;
    }
    for (std::size_t i = 0; i < sockets.size(); ++i) {
        stdio[first_handed_descriptor + i].flags = UV_INHERIT_FD;
        stdio[first_handed_descriptor + i].data.fd = sockets[i].second;
    }
    if (int rc = uv_pipe_init(loop_, &ready_pipe_, 0); rc < 0) {
        spdlog::error("upgrade: uv_pipe_init: {}", uv_strerror(rc));
        return false;
    }
    pipe_open_ = true;
    // Writable from the new process's side: it writes, this one reads.
    stdio.back().flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio.back().data.stream = reinterpret_cast<uv_stream_t*>(&ready_pipe_);

    uv_process_options_t options{};
    options.exit_cb = on_exit;
    options.file = command_.executable.c_str();
    options.args = argv.data();
    options.env = envp.data();
    options.stdio_count = static_cast<int>(stdio.size());
    options.stdio = stdio.data();
    ready_ = false;
    const int rc = uv_spawn(loop_, &process_, &options);
    process_open_ = true;  // initialized even when the spawn failed
    if (rc < 0) {
        spdlog::error("upgrade: cannot start {}: {}; still serving", command_.executable,
                      uv_strerror(rc));
        close();
        return false;
    }
    if (int read = uv_read_start(
            reinterpret_cast<uv_stream_t*>(&ready_pipe_),
            [](uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
                auto* self = static_cast<BinaryUpgrade*>(handle->data);
                *buffer = uv_buf_init(&self->read_byte_, 1);
            },
            on_read);
        read < 0) {
        // Without the pipe there is no telling when it serves: stop it (it drains).
        spdlog::error("upgrade: uv_read_start: {}; stopping the new process", uv_strerror(read));
        uv_process_kill(&process_, SIGTERM);
        return false;
    }
    spdlog::info(
        "SIGUSR2: started {} (pid {}) with {} listening socket{}; serving until it is "
        "ready",
        command_.executable, process_.pid, sockets.size(), sockets.size() == 1 ? "" : "s");
    return true;
}

void BinaryUpgrade::stop_new_process() {
    if (!in_progress()) return;
    spdlog::warn("upgrade: stopping the new process (pid {}) as well", process_.pid);
    if (int rc = uv_process_kill(&process_, SIGTERM); rc < 0) {
        spdlog::error("upgrade: kill {}: {}", process_.pid, uv_strerror(rc));
    }
}

void BinaryUpgrade::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
    auto* self = static_cast<BinaryUpgrade*>(stream->data);
    if (nread == 0) return;
    self->close_handle(reinterpret_cast<uv_handle_t*>(stream), self->pipe_open_);
    if (nread < 0) return;  // it closed the pipe unready: its exit is reported
    self->ready_ = true;
    self->on_ready_(self->process_.pid);
}

void BinaryUpgrade::on_exit(uv_process_t* process, std::int64_t status, int signal) {
    auto* self = static_cast<BinaryUpgrade*>(process->data);
    const std::string how = signal != 0 ? fmt::format("signal {} ({})", signal, strsignal(signal))
                                        : fmt::format("status {}", status);
    if (self->ready_) {
        spdlog::warn("upgrade: the new process (pid {}) exited with {}", process->pid, how);
    } else {
        spdlog::error(
            "upgrade failed: the new process (pid {}) exited with {} before it was "
            "ready; still serving",
            process->pid, how);
    }
    self->close();
}

}  // namespace fulcrum
