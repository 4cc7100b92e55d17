#pragma once
// Reading a configuration: the file (bounded), its TOML turned into positioned values,
// and the tables walked key by key, so that every error names file:line:column and the
// key path, and an unknown key gets the nearest valid one as a suggestion. What the keys
// mean is the schema's business (schema.hpp).

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <toml.hpp>

namespace fulcrum::config_reader {

// The largest configuration file: far above any real one, and small enough that toml11,
// at about a microsecond per byte of dense input, parses it in about a second.
inline constexpr std::size_t max_config_size = std::size_t{1} << 20;

// std::map tables keep keys sorted, so unknown keys are reported in a stable order.
using Value = toml::basic_value<toml::discard_comments, std::map, std::vector>;

// The file, read only up to one byte past max_config_size, which parse()
// rejects; ConfigError "FILE: cannot read: REASON" when that fails.
std::string read_file(const std::string& path);

// The TOML document of `text`; ConfigError, located, when it is larger than
// max_config_size, nested too deeply or too slow for toml11 to parse, or not TOML.
Value parse(std::string_view text, const std::string& source_name);

// A value that cannot be used; the message follows "FILE:LINE:COL: KEYPATH: ".
class Invalid : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string_view type_name(toml::value_t type);
// Throws Invalid "expected <type>, got <type>".
void expect_type(const Value& value, toml::value_t type);

// Every error of one file, reported together in file order.
class Errors {
public:
    explicit Errors(std::string source_name) : source_name_(std::move(source_name)) {}

    void add(const Value& at, std::string_view path, std::string_view message);

    // Runs `check`; an Invalid it throws becomes an error at `at`. Returns whether it passed.
    template <typename Check>
    bool attempt(const Value& at, std::string_view path, Check check) {
        try {
            check();
            return true;
        } catch (const Invalid& invalid) {
            add(at, path, invalid.what());
            return false;
        }
    }

    // Throws ConfigError with every error so far, in file order.
    void throw_if_any();

    // While `keys` is set, every key path the schema looks up goes in it, array indexes
    // dropped ("service.health.rise"): the configuration reference is checked against it.
    void collect_keys(std::set<std::string>* keys) { collected_keys_ = keys; }
    bool collecting_keys() const { return collected_keys_ != nullptr; }
    void key_looked_up(std::string_view path);

private:
    struct Position {
        std::uint_least32_t line;
        std::uint_least32_t column;
    };
    Position position_of(const Value& value);

    struct Entry {
        Position position;
        std::string text;
    };
    std::string source_name_;
    std::vector<Entry> entries_;
    std::set<std::string>* collected_keys_ = nullptr;
    // Offsets at which the lines of the parsed text start, built at the first error.
    const std::vector<char>* indexed_source_ = nullptr;
    std::vector<std::size_t> line_starts_;
};

enum class Need { optional, required };
enum class Outcome { absent, invalid, valid };

// One TOML table being read. It remembers which keys were asked for, so that whatever
// is left can be reported as unknown, with the nearest known key as a suggestion.
class Section {
public:
    Section(Errors& errors, const Value& table, std::string path)
        : errors_(errors), table_(table), path_(std::move(path)) {}

    const std::string& path() const { return path_; }

    std::string path_of(std::string_view key) const {
        return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
    }

    // The value of `key`, or nullptr when it is absent.
    const Value* find(std::string_view key);

    // Reports `message` at the value of `key`, or at the table when `key` is absent.
    void error(std::string_view key, std::string_view message);

    // Stores `convert(value of key)` in `out` when the key is present and valid; otherwise
    // `out` keeps its default and the problem is reported.
    template <typename T, typename Convert>
    Outcome read(std::string_view key, T& out, Convert convert, Need need = Need::optional) {
        const Value* value = find(key);
        if (value == nullptr) {
            if (need == Need::required) error(key, "missing required key");
            return Outcome::absent;
        }
        const bool valid = errors_.attempt(*value, path_of(key), [&] { out = convert(*value); });
        return valid ? Outcome::valid : Outcome::invalid;
    }

    // Reads the array `key` element by element, so that an error points at its element.
    template <typename T, typename Convert>
    Outcome read_list(std::string_view key, std::vector<T>& out, Convert convert) {
        const Value* value = find(key);
        if (value == nullptr) return Outcome::absent;
        const std::string path = path_of(key);
        if (!errors_.attempt(*value, path, [&] { expect_type(*value, toml::value_t::array); })) {
            return Outcome::invalid;
        }
        Outcome outcome = Outcome::valid;
        const auto& items = value->as_array();
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (!errors_.attempt(items[i], fmt::format("{}[{}]", path, i),
                                 [&] { out.push_back(convert(items[i])); })) {
                outcome = Outcome::invalid;
            }
        }
        return outcome;
    }

    // Reads the sub-table `key` ([log], [service.health], ...) with `read_body` when present.
    template <typename ReadBody>
    void table(std::string_view key, ReadBody read_body) {
        const Value* value = find(key);
        if (value == nullptr) return;
        const std::string path = path_of(key);
        if (!errors_.attempt(*value, path, [&] { expect_type(*value, toml::value_t::table); })) {
            return;
        }
        Section section(errors_, *value, path);
        read_body(section);
        section.report_unknown_keys();
    }

    // Reads each table of the array of tables `key` ([[service]], ...) with `read_item`.
    // With Need::required, at least one.
    template <typename ReadItem>
    void tables(std::string_view key, Need need, ReadItem read_item) {
        const Value* items = array_of_tables(key, need);
        if (items == nullptr) return;
        const std::string path = path_of(key);
        for (std::size_t i = 0; i < items->size(); ++i) {
            const Value& item = items->as_array()[i];
            const std::string item_path = fmt::format("{}[{}]", path, i);
            if (!errors_.attempt(item, item_path,
                                 [&] { expect_type(item, toml::value_t::table); })) {
                continue;
            }
            Section section(errors_, item, item_path);
            read_item(section);
            section.report_unknown_keys();
        }
    }

    void report_unknown_keys();

private:
    // The array `key` of tables(); nullptr when it is absent (an error when required) or
    // not an array.
    const Value* array_of_tables(std::string_view key, Need need);
    std::string unknown_key_message(std::string_view key) const;

    Errors& errors_;
    const Value& table_;
    std::string path_;
    std::set<std::string, std::less<>> known_;
};

}  // namespace fulcrum::config_reader
