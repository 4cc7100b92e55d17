#pragma once
// The running process's side of a binary upgrade (SIGUSR2, as in nginx): it starts the
// binary now on disk at the path it was itself started from, with the same arguments,
// and hands it every listening socket across exec (InheritedSockets is the other side).
// The new process loads the configuration afresh and binds what is new; when it serves,
// it says so on a pipe and `on_ready` runs here, which drains this process. A new
// process that fails (an invalid configuration, an address taken) exits before that,
// and this one goes on serving, untouched.

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace fulcrum {

class BinaryUpgrade {
public:
    // How this process was started: the executable's path as of now (after a package
    // upgrade replaces the file, /proc/self/exe names a deleted one), and argv.
    struct Command {
        std::string executable;
        std::vector<std::string> arguments;  // argv, argv[0] included
    };
    static Command current_command(int argc, char** argv);

    // A socket to hand over: its key (a listener_key, or "admin") and descriptor.
    using HandedSocket = std::pair<std::string, int>;

    BinaryUpgrade(uv_loop_t* loop, Command command, std::function<void(pid_t)> on_ready);
    ~BinaryUpgrade();
    BinaryUpgrade(const BinaryUpgrade&) = delete;
    BinaryUpgrade& operator=(const BinaryUpgrade&) = delete;

    // A new process is starting: it has been spawned and is not ready yet.
    bool in_progress() const { return process_open_ && !ready_; }
    // Spawns the new process with `sockets`. Logs and returns false when it cannot.
    bool start(const std::vector<HandedSocket>& sockets);
    // This process stops while a new one starts: that one is stopped too (SIGTERM).
    void stop_new_process();
    // Closes the handles (a new process goes on running). Idempotent.
    void close();

private:
    static void on_exit(uv_process_t* process, std::int64_t status, int signal);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer);
    void close_handle(uv_handle_t* handle, bool& open);

    uv_loop_t* loop_;
    Command command_;
    std::function<void(pid_t)> on_ready_;
    uv_process_t process_{};
    uv_pipe_t ready_pipe_{};  // the new process writes a byte once it serves
    bool process_open_ = false;
    bool pipe_open_ = false;
    bool ready_ = false;
    int closing_ = 0;
    char read_byte_ = 0;
};

}  // namespace fulcrum
