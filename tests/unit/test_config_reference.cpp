// doc/config-reference.md, the source of the README's table and fulcrum.toml(5), names
// exactly the keys the configuration reader looks up.

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "fulcrum/config/config.hpp"
#include "fulcrum/config/reader.hpp"
#include "fulcrum/config/schema.hpp"

using namespace fulcrum;

namespace {

// "service.health.rise" for every row "| `[service.health]` | `rise` | ...", and the
// tables the rows name ("service.health").
void reference_keys(std::set<std::string>& keys, std::set<std::string>& tables) {
    std::ifstream file(std::string(FULCRUM_SOURCE_ROOT) + "/doc/config-reference.md");
    REQUIRE(file);
    for (std::string line; std::getline(file, line);) {
        if (line.rfind("| `[", 0) != 0) continue;
        const std::size_t table_begin = line.find_first_not_of("[", 3);
        const std::size_t table_end = line.find(']', table_begin);
        const std::size_t key_begin = line.find('`', line.find("| `", table_end) + 1) + 1;
        const std::size_t key_end = line.find('`', key_begin);
        const std::string table = line.substr(table_begin, table_end - table_begin);
        tables.insert(table);
        keys.insert(table + "." + line.substr(key_begin, key_end - key_begin));
    }
}

}  // namespace

TEST_CASE("the configuration reference names every key the reader looks up, and no other",
          "[config][reference]") {
    std::set<std::string> documented;
    std::set<std::string> tables;
    reference_keys(documented, tables);
    REQUIRE(documented.size() > 50);

    // Every documented table present, so that the reader looks up each of its keys.
    std::string text;
    for (const std::string& table : tables) {
        if (table == "service" || table.rfind("service.", 0) == 0) continue;
        text += "[" + table + "]\n";
    }
    text += "[[service]]\n";
    for (const std::string& table : tables) {
        if (table.rfind("service.", 0) != 0) continue;
        text += table == "service.backend" ? "[[service.backend]]\n" : "[" + table + "]\n";
        // Its port is read for type dns-a only.
        if (table == "service.discovery") text += "type = \"dns-a\"\n";
    }
    const config_reader::Value root = config_reader::parse(text, "reference.toml");
    config_reader::Errors errors("reference.toml");
    std::set<std::string> looked_up;
    errors.collect_keys(&looked_up);
    config_reader::Section section(errors, root, "");
    Config config;
    config_schema::read_config(section, config);
    // The tables themselves are looked up as keys too.
    for (const std::string& table : tables) looked_up.erase(table);

    for (const std::string& key : looked_up) {
        INFO("the reader looks up " << key);
        CHECK(documented.contains(key));
    }
    for (const std::string& key : documented) {
        INFO("doc/config-reference.md documents " << key);
        CHECK(looked_up.contains(key));
    }
}
