#include "fulcrum/config/reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include "fulcrum/config/config.hpp"

namespace fulcrum::config_reader {
namespace {

// The optimal string alignment distance of `a` and `b` (edits, counting a swap of
// neighbours as one) when it is at most `limit`, else limit + 1. Lengths that differ by
// more than `limit` decide it at once, so a long unknown key costs no more than a short
// one; otherwise three rows of |b| + 1 (a swap looks two rows back).
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
    const std::size_t beyond = limit + 1;
    if (std::max(a.size(), b.size()) - std::min(a.size(), b.size()) > limit) return beyond;
    std::vector<std::size_t> before(b.size() + 1);
    std::vector<std::size_t> previous(b.size() + 1);
    std::vector<std::size_t> current(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                current[j] = std::min(current[j], before[j - 2] + 1);
            }
        }
        std::swap(before, previous);
        std::swap(previous, current);
    }
    return std::min(previous[b.size()], beyond);
}

// "service[0].backend" -> "service.backend", the name of its [[...]] header.
std::string header_name(std::string_view path) {
    std::string name;
    bool in_index = false;
    for (const char c : path) {
        if (c == '[') in_index = true;
        if (!in_index) name += c;
        if (c == ']') in_index = false;
    }
    return name;
}

// toml11 recurses once per nested array or inline table, and destroys nested tables
// recursively: bounding the nesting keeps a hostile file from overflowing the stack.
// Dotted keys and table headers count a level per part.
constexpr std::size_t max_nesting = 64;
// toml11 looks through the whole line of every value it parses (for comments, and for
// messages it builds and drops), so a line costs its values times its length, and a file
// the sum of that over its lines; this bound keeps the parse well under a second.
constexpr std::uint64_t max_line_work = std::uint64_t{1} << 25;

// Where a check before parsing found the text unsafe to hand to toml11.
struct ShapeError {
    std::size_t offset;
    std::string message;
};

// Walks TOML text as toml11's lexer splits it (strings of the four kinds, comments) and
// measures what makes toml11 deep or slow: nesting, and values on long lines. Where the
// text is not TOML it may count more than toml11 reads, never less: toml11 stops at the
// first error.
class ShapeCheck {
public:
    explicit ShapeCheck(std::string_view text) : text_(text) {}

    std::optional<ShapeError> run() {
        while (at_ < text_.size()) {
            const char c = text_[at_];
            if (c == '\n') {
                end_line();
            } else if (c == '"' || c == '\'') {
                skip_string(c);
                continue;
            } else if (c == '#') {
                at_ = std::min(text_.find('\n', at_), text_.size());
                continue;
            } else if (auto error = structure(c)) {
                return error;
            }
            ++at_;
        }
        end_line();
        if (work_ <= max_line_work) return std::nullopt;
        return ShapeError{
            worst_line_.start,
            fmt::format("{} values or key parts in a line of {} bytes; toml11's time grows with "
                        "values times line length, and this file's lines add up to too much: "
                        "put long arrays one value or a few per line",
                        worst_line_.values, worst_line_.length)};
    }

private:
    enum class Kind { array, inline_table };
    struct Open {
        Kind kind;
        std::size_t depth;
    };

    // One character outside strings and comments.
    std::optional<ShapeError> structure(char c) {
        switch (c) {
            case '[':
                // "[table]" and "[[array.of.tables]]" headers start a line at the top.
                if (open_.empty() && in_key_) {
                    header_ = true;
                    break;
                }
                return push(Kind::array);
            case '{':
                return push(Kind::inline_table);
            case ']':
            case '}':
                if (!open_.empty()) open_.pop_back();
                in_key_ = false;
                break;
            case '=':
                in_key_ = false;
                ++line_.values;
                break;
            case ',':
                in_key_ = !open_.empty() && open_.back().kind == Kind::inline_table;
                if (in_key_) key_parts_ = 0;
                ++line_.values;
                break;
            case '.':
                ++line_.values;
                if (in_key_) {
                    ++key_parts_;
                    if (depth() > max_nesting) return too_deep();
                }
                break;
            default:
                break;
        }
        return std::nullopt;
    }

    std::optional<ShapeError> push(Kind kind) {
        ++line_.values;
        open_.push_back({kind, depth() + 1});
        if (open_.back().depth > max_nesting) return too_deep();
        in_key_ = kind == Kind::inline_table;
        key_parts_ = 0;
        return std::nullopt;
    }

    // The nesting at this point: the enclosing array or inline table, else the table of
    // the last header, plus the parts of the key being read.
    std::size_t depth() const {
        const std::size_t base = !open_.empty() ? open_.back().depth : header_ ? 0 : table_depth_;
        return base + key_parts_;
    }

    ShapeError too_deep() const {
        return {at_, fmt::format("nested deeper than {} levels (arrays, inline tables and the "
                                 "parts of dotted keys count one each)",
                                 max_nesting)};
    }

    // A newline outside strings: a key or header may start.
    void end_line() {
        count_line();
        if (open_.empty()) {
            if (header_) table_depth_ = key_parts_ + 1;
            header_ = false;
            in_key_ = true;
            key_parts_ = 0;
        }
    }

    // Adds the line ending at `at_` to the work of the file.
    void count_line() {
        const std::size_t end = std::min(at_, text_.size());
        line_.length = end - line_.start;
        const std::uint64_t line_work = (line_.values + 1) * line_.length;
        work_ += line_work;
        if (line_work > worst_line_work_) {
            worst_line_work_ = line_work;
            worst_line_ = line_;
        }
        line_ = {.start = end + 1, .values = 0, .length = 0};
    }

    // Skips a string starting at `at_` with `quote`, as toml11's lexer reads it: three
    // quotes open a multi-line string, which the first three closing quotes end (with up
    // to two more quotes belonging to it); a basic string's backslash escapes the next
    // character. A newline ends a one-line string (toml11 rejects it there).
    void skip_string(char quote) {
        const bool multi_line = text_.substr(at_, 3) == std::string(3, quote);
        at_ += multi_line ? 3 : 1;
        while (at_ < text_.size()) {
            const char c = text_[at_];
            if (c == '\\' && quote == '"') {
                // The escaped character, unless it is a newline (counted below).
                at_ += at_ + 1 < text_.size() && text_[at_ + 1] != '\n' ? 2 : 1;
                continue;
            }
            if (c == '\n') {
                if (!multi_line) return;
                count_line();
            } else if (c == quote) {
                if (!multi_line) {
                    ++at_;
                    return;
                }
                if (text_.substr(at_, 3) == std::string(3, quote)) {
                    at_ += 3;
                    for (int extra = 0; extra < 2 && at_ < text_.size() && text_[at_] == quote;
                         ++extra) {
                        ++at_;
                    }
                    return;
                }
            }
            ++at_;
        }
    }

    std::string_view text_;
    std::size_t at_ = 0;
    std::vector<Open> open_;
    bool in_key_ = true;  // reading a key (or a header), not a value
    bool header_ = false;
    std::size_t key_parts_ = 0;    // dots so far in the key being read
    std::size_t table_depth_ = 0;  // parts of the last [header]

    struct Line {
        std::size_t start = 0;
        std::uint64_t values = 0;  // separators toml11 reads a value or key part after
        std::uint64_t length = 0;  // known at its end
    };
    Line line_;
    Line worst_line_;
    std::uint64_t worst_line_work_ = 0;
    std::uint64_t work_ = 0;
};

// A descriptor closed with its scope.
class OpenFile {
public:
    explicit OpenFile(int fd) : fd(fd) {}
    ~OpenFile() {
        if (fd >= 0) ::close(fd);
    }
    OpenFile(const OpenFile&) = delete;
    OpenFile& operator=(const OpenFile&) = delete;

    const int fd;
};

// "SOURCE:LINE:COLUMN: message" for byte `offset` of `text`, columns in bytes as toml11's.
ConfigError located_error(std::string_view text, std::size_t offset, const std::string& source,
                          std::string_view message) {
    const std::string_view before = text.substr(0, offset);
    const std::size_t line =
        1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
    const std::size_t line_start =
        before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
    return ConfigError(
        {fmt::format("{}:{}:{}: {}", source, line, offset - line_start + 1, message)});
}

}  // namespace

std::string read_file(const std::string& path) {
    const auto cannot_read = [&path](int error) {
        return ConfigError(
            {fmt::format("{}: cannot read: {}", path, std::generic_category().message(error))});
    };
    // O_NONBLOCK: opening a FIFO no one writes to returns at once; reads block again below.
    const OpenFile file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (file.fd < 0) throw cannot_read(errno);
    const int flags = ::fcntl(file.fd, F_GETFL);
    if (flags < 0 || ::fcntl(file.fd, F_SETFL, flags & ~O_NONBLOCK) < 0) throw cannot_read(errno);
    // One byte past the limit tells parse() the file is too large, whatever its end.
    std::string text;
    char buffer[65536];
    while (text.size() <= max_config_size) {
        const std::size_t wanted = std::min(sizeof buffer, max_config_size + 1 - text.size());
        const ssize_t n = ::read(file.fd, buffer, wanted);
        if (n == 0) break;
        if (n > 0) {
            text.append(buffer, static_cast<std::size_t>(n));
        } else if (errno != EINTR) {
            throw cannot_read(errno);
        }
    }
    return text;
}

Value parse(std::string_view text, const std::string& source_name) {
    if (text.size() > max_config_size) {
        throw located_error(text, max_config_size, source_name,
                            fmt::format("larger than {} bytes, the limit for a configuration file",
                                        max_config_size));
    }
    if (const auto error = ShapeCheck(text).run()) {
        throw located_error(text, error->offset, source_name, error->message);
    }
    try {
        std::istringstream stream{std::string(text)};
        return toml::parse<toml::discard_comments, std::map, std::vector>(stream, source_name);
    } catch (const toml::exception& error) {
        // toml11's message already names the file and shows the offending line.
        throw ConfigError({error.what()});
    }
}

std::string_view type_name(toml::value_t type) {
    switch (type) {
        case toml::value_t::empty:
            return "nothing";
        case toml::value_t::boolean:
            return "a boolean";
        case toml::value_t::integer:
            return "an integer";
        case toml::value_t::floating:
            return "a float";
        case toml::value_t::string:
            return "a string";
        case toml::value_t::offset_datetime:
            return "a date-time";
        case toml::value_t::local_datetime:
            return "a local date-time";
        case toml::value_t::local_date:
            return "a date";
        case toml::value_t::local_time:
            return "a time";
        case toml::value_t::array:
            return "an array";
        case toml::value_t::table:
            return "a table";
    }
    return "an unknown type";
}

void expect_type(const Value& value, toml::value_t type) {
    if (value.type() != type) {
        throw Invalid(fmt::format("expected {}, got {}", type_name(type), type_name(value.type())));
    }
}

// Optimal string alignment distance: edits, counting a swap of neighbours as one.
void Errors::add(const Value& at, std::string_view path, std::string_view message) {
    const Position where = position_of(at);
    entries_.push_back({where, fmt::format("{}:{}:{}: {}: {}", source_name_, where.line,
                                           where.column, path, message)});
}

Errors::Position Errors::position_of(const Value& value) {
    // toml11's location() counts lines from the top of the file and copies the value's
    // line on every call, quadratic over many errors; the value's offset in the parsed
    // text and an index of line starts built once give the same line and column.
    const auto* region = dynamic_cast<const toml::detail::region*>(toml::detail::get_region(value));
    if (region == nullptr) {  // not from the text
        const toml::source_location where = value.location();
        return {where.line(), where.column()};
    }
    const std::vector<char>& source = *region->source();
    if (indexed_source_ != &source) {
        line_starts_.assign(1, 0);
        for (std::size_t i = 0; i < source.size(); ++i) {
            if (source[i] == '\n') line_starts_.push_back(i + 1);
        }
        indexed_source_ = &source;
    }
    const auto offset = static_cast<std::size_t>(region->first() - region->begin());
    const auto next_line = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    return {static_cast<std::uint_least32_t>(next_line - line_starts_.begin()),
            static_cast<std::uint_least32_t>(offset - *std::prev(next_line) + 1)};
}

void Errors::throw_if_any() {
    if (entries_.empty()) return;
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
        return std::pair(a.position.line, a.position.column) <
               std::pair(b.position.line, b.position.column);
    });
    std::vector<std::string> lines;
    for (Entry& entry : entries_) lines.push_back(std::move(entry.text));
    throw ConfigError(std::move(lines));
}

void Errors::key_looked_up(std::string_view path) {
    std::string key;
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '[') {
            i = path.find(']', i);
            if (i == std::string_view::npos) break;
            continue;
        }
        key.push_back(path[i]);
    }
    collected_keys_->insert(std::move(key));
}

const Value* Section::find(std::string_view key) {
    known_.emplace(key);
    if (errors_.collecting_keys()) errors_.key_looked_up(path_of(key));
    const auto& table = table_.as_table();
    const auto it = table.find(std::string(key));
    return it == table.end() ? nullptr : &it->second;
}

void Section::error(std::string_view key, std::string_view message) {
    const Value* value = find(key);
    errors_.add(value != nullptr ? *value : table_, path_of(key), message);
}

const Value* Section::array_of_tables(std::string_view key, Need need) {
    const Value* value = find(key);
    const std::string path = path_of(key);
    const std::string header = header_name(path);
    if (value == nullptr) {
        if (need == Need::optional) return nullptr;
        error(key, fmt::format("missing required key; add at least one [[{}]]", header));
        return nullptr;
    }
    if (!value->is_array()) {
        errors_.add(*value, path,
                    fmt::format("expected an array of tables ([[{}]]), got {}", header,
                                type_name(value->type())));
        return nullptr;
    }
    if (value->as_array().empty() && need == Need::required) {
        error(key, fmt::format("empty {} list; add at least one [[{}]]", key, header));
    }
    return value;
}

void Section::report_unknown_keys() {
    for (const auto& [key, value] : table_.as_table()) {
        if (known_.contains(key)) continue;
        errors_.add(value, path_of(key), unknown_key_message(key));
    }
}

std::string Section::unknown_key_message(std::string_view key) const {
    // Close enough to be a typo: about one edit per three characters of the valid key.
    const auto close_enough = [](const std::string& candidate) {
        return std::max<std::size_t>(1, candidate.size() / 3);
    };
    std::size_t limit = 0;
    for (const std::string& candidate : known_) limit = std::max(limit, close_enough(candidate));
    const std::string* nearest = nullptr;
    std::size_t nearest_distance = limit + 1;
    for (const std::string& candidate : known_) {
        const std::size_t distance = edit_distance(key, candidate, limit);
        if (distance < nearest_distance) {
            nearest = &candidate;
            nearest_distance = distance;
        }
    }
    if (nearest != nullptr && nearest_distance <= close_enough(*nearest)) {
        return fmt::format("unknown key; did you mean '{}'?", *nearest);
    }
    return fmt::format("unknown key; valid keys here: {}", fmt::join(known_, ", "));
}

}  // namespace fulcrum::config_reader
