// The command line: fulcrum [-c FILE] [--check] [--log-level LEVEL] [--version] [--help]
// Exit status: 0 ok, 1 configuration or startup error, 2 usage error.

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "fulcrum/config/config.hpp"
#include "fulcrum/logging.hpp"
#include "fulcrum/server.hpp"
#include "fulcrum/upgrade/binary_upgrade.hpp"
#include "fulcrum/upgrade/inherited_sockets.hpp"

namespace {

constexpr int exit_config_error = 1;
constexpr int exit_usage_error = 2;

}  // namespace

int main(int argc, char** argv) {
    // First, before anything opens a descriptor: it closes what an upgrade let through.
    fulcrum::InheritedSockets inherited;
    try {
        inherited = fulcrum::InheritedSockets::from_environment();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return exit_config_error;
    }
    CLI::App app{"fulcrum: a layer-4 TCP load balancer"};
    std::string config_path;
    bool check = false;
    std::string log_level;
    app.add_option("-c,--config", config_path,
                   "configuration file (TOML); without it the embedded default runs");
    app.add_flag("--check", check,
                 "validate the configuration, print it with every default filled in, and exit");
    app.add_option("--log-level", log_level, "override log.level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.set_version_flag("--version", std::string("fulcrum ") + FULCRUM_VERSION);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return exit_usage_error;
    }

    fulcrum::Config config;
    try {
        config = config_path.empty() ? fulcrum::default_config()
                                     : fulcrum::load_config_file(config_path);
    } catch (const fulcrum::ConfigError& e) {
        // One write for every line: a hostile file can have 100,000 errors.
        std::fprintf(stderr, "%s\n", e.what());
        return exit_config_error;
    }
    if (!log_level.empty()) config.log.level = log_level;
    if (check) {
        std::fputs(fulcrum::to_toml(config).c_str(), stdout);
        std::fprintf(stderr, "%s: configuration is valid\n", config.source.c_str());
        return 0;
    }

    fulcrum::configure_logging(config.log);
    try {
        return fulcrum::Server(std::make_shared<const fulcrum::Config>(std::move(config)),
                               config_path, log_level,
                               fulcrum::BinaryUpgrade::current_command(argc, argv),
                               std::move(inherited))
            .run();
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return exit_config_error;
    }
}
