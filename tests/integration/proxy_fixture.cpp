#include "proxy_fixture.hpp"

#include <signal.h>

#include <cstdlib>
#include <future>
#include <stdexcept>

namespace fulcrum::test {

namespace {

constexpr std::size_t chunk_size = 1024 * 1024;

// Reads one HTTP/1.1 response with a Content-Length body and returns the body.
std::string read_http_body(const Socket& socket) {
    std::string data;
    std::size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
        std::string chunk = socket.read_some();
        if (chunk.empty()) throw std::runtime_error("EOF in HTTP headers: " + data);
        data += chunk;
    }
    const auto at = data.find("Content-Length: ");
    if (at == std::string::npos) throw std::runtime_error("no Content-Length: " + data);
    const std::size_t length = std::stoul(data.substr(at + 16));
    std::string body = data.substr(header_end + 4);
    if (body.size() < length) body += socket.read_exact(length - body.size());
    return body;
}

}  // namespace

ServiceSpec service_to(std::vector<std::uint16_t> backends, std::string settings,
                       std::string name) {
    ServiceSpec spec;
    spec.name = std::move(name);
    spec.listen = free_port();
    spec.backends = std::move(backends);
    spec.settings = std::move(settings);
    return spec;
}

int default_workers() {
    static const int workers = [] {
        const char* text = std::getenv("FULCRUM_TEST_WORKERS");
        if (text == nullptr || *text == '\0') return 1;
        char* end = nullptr;
        const long value = std::strtol(text, &end, 10);
        if (*end != '\0' || value < 1 || value > 1024) {
            throw std::runtime_error(std::string("FULCRUM_TEST_WORKERS must be 1..1024, not '") +
                                     text + "'");
        }
        return static_cast<int>(value);
    }();
    return workers;
}

std::string config_for(const std::vector<ServiceSpec>& services, const std::string& runtime) {
    const bool own_workers = runtime.find("workers") != std::string::npos;
    const std::string workers =
        own_workers ? "" : "workers = " + std::to_string(default_workers()) + "\n";
    std::string toml =
        "[log]\nlevel = \"debug\"\naccess_log = true\n[runtime]\n" + workers + runtime + "\n";
    for (const ServiceSpec& s : services) {
        toml += "[[service]]\nname = \"" + s.name + "\"\nlisten = \"" + s.listen_host + ":" +
                std::to_string(s.listen) + "\"\n" + s.settings + "\n[service.health]\n" + s.health +
                "\n";
        if (!s.passive.empty()) toml += "[service.passive]\n" + s.passive + "\n";
        for (std::size_t i = 0; i < s.backends.size(); ++i) {
            toml += "[[service.backend]]\nname = \"b" + std::to_string(i) + "\"\naddress = \"" +
                    s.backend_host + ":" + std::to_string(s.backends[i]) + "\"\n";
        }
    }
    return toml;
}

std::string with_admin(const std::string& config, std::uint16_t port, const std::string& lines) {
    return config + "[admin]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n" + lines;
}

Fulcrum start_fulcrum(const std::vector<ServiceSpec>& services, const std::string& runtime,
                      std::optional<rlim_t> max_files) {
    std::vector<std::uint16_t> ports;
    for (const ServiceSpec& s : services) ports.push_back(s.listen);
    return Fulcrum(config_for(services, runtime), ports, {},
                   ChildProcess::Options{.max_open_files = max_files, .tsan_suppressions = {}});
}

Transfer echo_through(std::uint16_t port, std::size_t size) {
    return echo_over(connect_to(port, 60), size);
}

Transfer echo_over(const Socket& socket, std::size_t size) {
    std::future<std::string> sent = std::async(std::launch::async, [&] {
        Sha256 hash;
        for (std::size_t offset = 0, i = 0; offset < size; offset += chunk_size, ++i) {
            std::string chunk = pattern(std::min(chunk_size, size - offset), i + 7);
            hash.update(chunk.data(), chunk.size());
            socket.send_all(chunk);
        }
        socket.shutdown_write();
        return hash.hex();
    });
    Transfer t;
    Sha256 hash;
    for (;;) {
        std::string chunk = socket.read_some();
        if (chunk.empty()) break;
        t.received += chunk.size();
        hash.update(chunk.data(), chunk.size());
    }
    t.sent_hash = sent.get();
    t.received_hash = hash.hex();
    return t;
}

std::string http_get(const Socket& socket, const std::string& path) {
    socket.send_all("GET " + path + " HTTP/1.1\r\nHost: fulcrum\r\n\r\n");
    return read_http_body(socket);
}

NamedEcho::NamedEcho(std::string name)
    : server_([name = std::move(name)](Socket s) {
          s.send_all(name + "\n");
          for (std::string chunk; !(chunk = s.read_some()).empty();) s.send_all(chunk);
      }) {}

Socket established_session(std::uint16_t port) {
    Socket s = connect_to(port);
    s.send_all("x");
    if (s.read_exact(1) != "x") throw std::runtime_error("the echo through fulcrum failed");
    return s;
}

std::pair<Socket, std::string> connect_named(std::uint16_t port) {
    Socket s = connect_to(port);
    std::string name;
    for (char c = 0; (c = s.read_exact(1)[0]) != '\n';) name += c;
    return {std::move(s), name};
}

void set_health(const DemoBackend& backend, bool healthy) {
    Socket socket = connect_to(backend.port());
    socket.send_all(std::string("POST /health/") + (healthy ? "ok" : "fail") +
                    " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    socket.read_to_eof();
}

void reload(Fulcrum& fulcrum, const std::string& config, std::size_t reloads) {
    fulcrum.write_config(config);
    fulcrum.process().send_signal(SIGHUP);
    const bool logged = poll_until(
        [&] {
            const std::string log = fulcrum.process().output();
            return count_of(log, "reloaded ") + count_of(log, "reload rejected") >= reloads;
        },
        10s);
    if (!logged)
        throw std::runtime_error("no reload outcome logged:\n" + fulcrum.process().output());
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++count;
    }
    return count;
}

}  // namespace fulcrum::test
