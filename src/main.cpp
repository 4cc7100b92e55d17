// The command line: fulcrum [-c FILE] [--check] [--log-level LEVEL] [--version] [--help]
//               fulcrum register --etcd URL --prefix P --name N --address A [--ttl T]
//                                [--weight W]
// Exit status: 0 ok, 1 configuration or startup error, 2 usage error.

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "fulcrum/config/config.hpp"
#include "fulcrum/config/duration.hpp"
#include "fulcrum/discovery/etcd_registration.hpp"
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

    fulcrum::Registration registration;
    std::string ttl = "10s";
    int weight = 0;
    CLI::App* register_command = app.add_subcommand(
        "register",
        "register a backend in etcd under a lease, keep the lease alive, delete the key on "
        "SIGTERM");
    register_command
        ->add_option("--etcd", registration.endpoints,
                     "etcd endpoint, http://host:port (repeat it to fail over)")
        ->required();
    register_command->add_option("--prefix", registration.prefix, "the prefix fulcrum watches")
        ->required();
    register_command
        ->add_option("--name", registration.name, "the backend's name (the key's last segment)")
        ->required();
    register_command->add_option("--address", registration.address, "the backend, numeric ip:port")
        ->required();
    register_command->add_option("--ttl", ttl, "the lease's time to live")->capture_default_str();
    register_command->add_option("--weight", weight, "its weight (at least 1)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return exit_usage_error;
    }
    if (*register_command) {
        try {
            const std::optional<fulcrum::Duration> parsed = fulcrum::parse_duration(ttl);
            if (!parsed) throw std::invalid_argument("--ttl: not a duration, e.g. 10s");
            registration.ttl = *parsed;
            if (register_command->count("--weight") > 0) registration.weight = weight;
            fulcrum::check_registration(registration);
        } catch (const std::invalid_argument& e) {
            std::fprintf(stderr, "fulcrum register: %s\n", e.what());
            return exit_usage_error;
        }
        fulcrum::configure_logging(fulcrum::LogConfig{});
        return fulcrum::run_registration(registration);
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
