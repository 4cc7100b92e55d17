// Hostile configuration files through the real binary: too deep, too large, too slow to
// parse, endless, or mangled. `--check` must answer 1 with a located message in bounded
// time, and a reload must reject them while the running configuration keeps serving.

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

#include "../support/repeated.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;

namespace {

// A valid service to `backend`, listening on `listen`, with `extra` lines appended to its
// backend table.
std::string service_config(std::uint16_t listen, const std::string& backend,
                           const std::string& extra = "") {
    return "[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:" + std::to_string(listen) +
           "\"\n[service.health]\nenabled = false\n"
           "[[service.backend]]\naddress = \"" +
           backend + "\"\n" + extra;
}

struct Hostile {
    std::string name;
    std::string text;
};

// The shapes that crashed the parser or took seconds to minutes, each after a valid
// service (the file is rejected before the service matters).
std::vector<Hostile> hostile_configs() {
    const std::string valid = service_config(1, "127.0.0.1:3001");
    std::string trusted;
    std::string integers;
    std::string unknown_keys;
    for (int i = 0; i < 10000; ++i) {
        trusted += (i == 0 ? "\"10." : ", \"10.") + std::to_string(i >> 16) + "." +
                   std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255) + "\"";
    }
    for (int i = 0; i < 40000; ++i) integers += (i == 0 ? "" : ", ") + std::to_string(i);
    for (int i = 0; i < 100000; ++i) unknown_keys += "k" + std::to_string(i) + "=1\n";
    return {
        {"10,000 nested arrays", valid + "x = " + repeated("[", 10000) + repeated("]", 10000)},
        {"5,000 nested inline tables",
         valid + "x = " + repeated("{a = ", 5000) + repeated("}", 5000)},
        {"a 1,000,000-byte unknown key", valid + std::string(1000000, 'k') + " = 1\n"},
        {"a 10 MiB unknown key", valid + std::string(10 << 20, 'k') + " = 1\n"},
        {"10,000 proxy_trusted entries on one line",
         "[[service]]\nname = \"web\"\nlisten = \"127.0.0.1:1\"\naccept_proxy = true\n"
         "proxy_trusted = [" +
             trusted + "]\n[[service.backend]]\naddress = \"127.0.0.1:3001\"\n"},
        {"40,000 integers on one line", valid + "x = [" + integers + "]\n"},
        {"100,000 unknown keys", valid + unknown_keys},
    };
}

// "FILE:LINE:COLUMN: " naming `file`.
bool located_in(const std::string& output, const std::string& file) {
    return std::regex_search(
        output,
        std::regex(std::regex_replace(file, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                   R"(:[0-9]+:[0-9]+: )"));
}

#ifdef FULCRUM_TEST_SANITIZED
constexpr auto check_timeout = 60s;  // room for the sanitizers' slowdown of the dense cases
#else
constexpr auto check_timeout = 10s;
#endif

}  // namespace

TEST_CASE("--check rejects deep, large, slow-to-parse and endless files with a location",
          "[check][hostile]") {
    const TempDir dir;
    for (const Hostile& hostile : hostile_configs()) {
        INFO(hostile.name);
        const std::string path = dir.write("fulcrum.toml", hostile.text);
        const RunResult result = run_fulcrum({"--check", "-c", path}, check_timeout);
        INFO(result.output.substr(0, 2000));
        CHECK(result.exit_code == 1);
        CHECK(located_in(result.output, path));
    }
    const RunResult endless = run_fulcrum({"--check", "-c", "/dev/zero"});
    INFO(endless.output);
    CHECK(endless.exit_code == 1);
    CHECK_THAT(endless.output, Catch::Contains("/dev/zero:1:1048577: larger than 1048576 bytes"));
}

TEST_CASE("SIGHUP with a deep, large or endless file keeps the running configuration",
          "[lifecycle][reload][hostile]") {
    const DemoBackend backend("backend-a");
    const std::uint16_t port = free_port();
    Fulcrum fulcrum(service_config(port, backend.address()), {port});
    const std::string& path = fulcrum.config_path();
    const auto still_serving = [&] {
        const Socket client = connect_to(port, 10);
        CHECK(http_get(client, "/") == "backend-a\n");
    };

    reload(fulcrum,
           service_config(port, backend.address(),
                          "x = " + repeated("[", 10000) + repeated("]", 10000) + "\n"),
           1);
    std::string log = fulcrum.process().output();
    INFO(log.substr(0, 4000));
    CHECK_THAT(log, Catch::Contains("reload: " + path + ":8:67: nested deeper than 64 levels"));
    CHECK_THAT(log, Catch::Contains("reload rejected: still running the previous configuration"));
    CHECK(fulcrum.process().running());
    still_serving();

    // The file becomes endless: a link to /dev/zero.
    std::filesystem::remove(path);
    std::filesystem::create_symlink("/dev/zero", path);
    fulcrum.process().send_signal(SIGHUP);
    CHECK(poll_until([&] { return count_of(fulcrum.process().output(), "reload rejected") == 2; },
                     10s));
    log = fulcrum.process().output();
    CHECK_THAT(log, Catch::Contains("reload: " + path + ":1:1048577: larger than 1048576 bytes"));
    CHECK(fulcrum.process().running());
    still_serving();
}

namespace {

// One random edit of `text`: a byte changed, the end cut off, a line doubled or dropped,
// a span deleted, or a token inserted that parsers trip on.
std::string mutate(std::string text, std::mt19937_64& random) {
    static const std::vector<std::string> tokens = {"[",
                                                    "]",
                                                    "{",
                                                    "}",
                                                    "[[",
                                                    "]]",
                                                    "\"",
                                                    "'",
                                                    "\"\"\"",
                                                    "'''",
                                                    "=",
                                                    ",",
                                                    ".",
                                                    "#",
                                                    "\n",
                                                    "\\",
                                                    "\\u",
                                                    "\\U0010FFFF",
                                                    "99999999999999999999999",
                                                    "-9223372036854775809",
                                                    "1e99999",
                                                    "nan",
                                                    "inf",
                                                    "0x",
                                                    "1979-05-27T07:32:00Z",
                                                    "\xff\xfe",
                                                    std::string(1, '\0'),
                                                    "[" + repeated("[", 100),
                                                    repeated("{a=", 100),
                                                    repeated("a.", 100)};
    const auto pick = [&random](std::size_t n) { return static_cast<std::size_t>(random() % n); };
    if (text.empty()) text = "\n";
    const std::size_t at = pick(text.size());
    // The line holding `at`, with its newline.
    const std::size_t previous = at == 0 ? std::string::npos : text.rfind('\n', at - 1);
    const std::size_t line_start = previous == std::string::npos ? 0 : previous + 1;
    const std::size_t line_length = std::min(text.find('\n', at), text.size() - 1) + 1 - line_start;
    switch (pick(6)) {
        case 0:
            text[at] = static_cast<char>(random());
            break;
        case 1:
            text.resize(at);
            break;
        case 2:
            text.insert(line_start, text.substr(line_start, line_length));
            break;
        case 3:
            text.erase(line_start, line_length);
            break;
        case 4:
            text.erase(at, 1 + pick(16));
            break;
        default:
            text.insert(at, tokens[pick(tokens.size())]);
            break;
    }
    return text;
}

std::vector<std::string> example_configs() {
    std::vector<std::string> texts;
    for (const auto& entry : std::filesystem::directory_iterator(FULCRUM_SOURCE_ROOT "/examples")) {
        if (entry.path().extension() != ".toml") continue;
        std::ostringstream text;
        text << std::ifstream(entry.path()).rdbuf();
        texts.push_back(text.str());
    }
    return texts;
}

}  // namespace

TEST_CASE("2,000 mutated example configurations on --check: no signal, none over 2 s",
          "[check][hostile]") {
    const std::vector<std::string> examples = example_configs();
    REQUIRE_FALSE(examples.empty());
    std::mt19937_64 random(22);
    const TempDir dir;
#ifdef FULCRUM_TEST_SANITIZED
    // The instrumented binary is checked for memory and thread errors on fewer cases, with
    // room for the sanitizers' slowdown; the time limit is the product build's promise.
    constexpr int cases = 500;
    constexpr auto limit = 10s;
#else
    constexpr int cases = 2000;
    constexpr auto limit = 2s;
#endif
    constexpr int at_once = 4;  // a few processes at a time keep both cores busy
    // A mutation can turn an address into a host name, which --check resolves: one try of
    // one second and no search list keep that bounded where no resolver answers (CI).
    const ScopedEnvironment resolver_options{{"RES_OPTIONS", "timeout:1 attempts:1"},
                                             {"LOCALDOMAIN", ""}};
    for (int first = 0; first < cases; first += at_once) {
        struct Run {
            std::string path;
            ChildProcess process;
            std::chrono::steady_clock::time_point started;
        };
        std::vector<Run> runs;
        for (int i = first; i < first + at_once; ++i) {
            std::string text = examples[static_cast<std::size_t>(i) % examples.size()];
            for (std::size_t edits = 1 + random() % 3; edits > 0; --edits) {
                text = mutate(std::move(text), random);
            }
            std::string path = dir.write("m" + std::to_string(i) + ".toml", text);
            const auto started = std::chrono::steady_clock::now();
            ChildProcess process({FULCRUM_BINARY, "--check", "-c", path});
            runs.push_back({std::move(path), std::move(process), started});
        }
        for (Run& run : runs) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                limit - (std::chrono::steady_clock::now() - run.started));
            const std::optional<int> exit_code =
                run.process.wait_exit(std::max(left, std::chrono::milliseconds(0)));
            INFO(run.path << "\n" << run.process.output().substr(0, 2000));
            REQUIRE(exit_code.has_value());
            REQUIRE((*exit_code == 0 || *exit_code == 1));
        }
    }
}
