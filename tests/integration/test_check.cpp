// The command line as a user meets it: `fulcrum --check`, configuration errors and
// usage errors, through the real binary.
//
// Exit status contract: 0 ok, 1 configuration error, 2 usage error.

#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace fulcrum::test;

namespace {

const std::string example_config = FULCRUM_SOURCE_ROOT "/examples/fulcrum.toml";

// The `name` of every [[service]] table in a TOML file, read line by line: enough for
// the example file, and independent of the parser under test.
std::vector<std::string> service_names(const std::string& path) {
    std::ifstream file(path);
    const std::regex table_header(R"(^\s*\[)");
    const std::regex name_line(R"xx(^\s*name\s*=\s*"([^"]*)")xx");
    std::vector<std::string> names;
    bool in_service = false;
    std::smatch match;
    for (std::string line; std::getline(file, line);) {
        if (std::regex_search(line, table_header)) {
            in_service = line.find("[[service]]") != std::string::npos;
        } else if (in_service && std::regex_search(line, match, name_line)) {
            names.push_back(match[1]);
        }
    }
    return names;
}

}  // namespace

TEST_CASE("--check accepts the example configuration and prints it in full", "[check]") {
    const RunResult result = run_fulcrum({"--check", "-c", example_config});
    INFO(result.output);
    CHECK(result.exit_code == 0);
    CHECK_THAT(result.output, Catch::Contains("[[service]]"));
    // Defaults are filled in: a key the example leaves out still appears.
    CHECK_THAT(result.output, Catch::Contains("name = \"127.0.0.1:3001\""));

    const std::vector<std::string> names = service_names(example_config);
    REQUIRE(names.size() >= 2);
    for (const std::string& name : names) {
        CHECK_THAT(result.output, Catch::Contains("name = \"" + name + "\""));
    }
}

TEST_CASE("--check without -c prints the embedded default", "[check]") {
    const RunResult result = run_fulcrum({"--check"});
    INFO(result.output);
    CHECK(result.exit_code == 0);
    CHECK_THAT(result.output, Catch::Contains("0.0.0.0:8080"));
    CHECK_THAT(result.output, Catch::Contains("127.0.0.1:3001"));
    CHECK_THAT(result.output, Catch::Contains("127.0.0.1:3002"));
    CHECK_THAT(result.output, Catch::Contains("http-502"));
}

TEST_CASE("--check names the line, column and key of a misspelled key and suggests a fix",
          "[check]") {
    const TempDir dir;
    const std::string path = dir.write("fulcrum.toml",
                                       "[[service]]\n"
                                       "name = \"web\"\n"
                                       "listn = \"127.0.0.1:8080\"\n"
                                       "[[service.backend]]\n"
                                       "address = \"127.0.0.1:3001\"\n");
    const RunResult result = run_fulcrum({"--check", "-c", path});
    INFO(result.output);
    CHECK(result.exit_code == 1);
    // FILE:LINE:COL: KEYPATH: message
    const std::regex located(R"(fulcrum\.toml:3:[0-9]+: service\[0\]\.listn: )");
    CHECK(std::regex_search(result.output, located));
    CHECK_THAT(result.output, Catch::Contains("did you mean 'listen'"));
}

TEST_CASE("--check rejects a file that is not TOML", "[check]") {
    const TempDir dir;
    const std::string path = dir.write("not-toml.toml", "<html>this is not = [toml\n");
    const RunResult result = run_fulcrum({"--check", "-c", path});
    INFO(result.output);
    CHECK(result.exit_code == 1);
    // toml11's parse error points into the file.
    CHECK_THAT(result.output, Catch::Contains("not-toml.toml"));
}

TEST_CASE("--check on a missing file is a configuration error naming it", "[check]") {
    const TempDir dir;
    const std::string path = dir.path() + "/missing.toml";
    const RunResult result = run_fulcrum({"--check", "-c", path});
    INFO(result.output);
    CHECK(result.exit_code == 1);
    CHECK_THAT(result.output, Catch::Contains("missing.toml"));
}

TEST_CASE("usage errors exit 2", "[check]") {
    SECTION("unknown flag") {
        const RunResult result = run_fulcrum({"--no-such-flag"});
        INFO(result.output);
        CHECK(result.exit_code == 2);
    }
    SECTION("unknown log level") {
        const RunResult result = run_fulcrum({"--check", "--log-level", "loud"});
        INFO(result.output);
        CHECK(result.exit_code == 2);
    }
}

TEST_CASE("--version and --help exit 0", "[check]") {
    const RunResult version = run_fulcrum({"--version"});
    INFO(version.output);
    CHECK(version.exit_code == 0);
    CHECK(std::regex_search(version.output, std::regex(R"(\d+\.\d+\.\d+)")));

    const RunResult help = run_fulcrum({"--help"});
    INFO(help.output);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains("--check"));
}
