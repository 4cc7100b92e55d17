#include "prometheus_text.hpp"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

namespace fulcrum::test {

namespace {

bool name_start(char c, bool colon_allowed) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (colon_allowed && c == ':');
}

bool name_char(char c, bool colon_allowed) {
    return name_start(c, colon_allowed) || (c >= '0' && c <= '9');
}

// Reads one line's parts left to right; every failure names the line.
class LineReader {
public:
    LineReader(std::string_view line, std::size_t number) : line_(line), number_(number) {}

    [[noreturn]] void fail(const std::string& why) const {
        throw std::runtime_error("line " + std::to_string(number_) + ": " + why + ": " +
                                 std::string(line_));
    }
    bool done() const { return at_ >= line_.size(); }
    bool peek(char c) const { return !done() && line_[at_] == c; }
    void expect(char c) {
        if (!peek(c)) fail(std::string("expected '") + c + "'");
        ++at_;
    }
    std::string name(bool colon_allowed) {
        const std::size_t start = at_;
        if (done() || !name_start(line_[at_], colon_allowed)) fail("expected a name");
        while (!done() && name_char(line_[at_], colon_allowed)) ++at_;
        return std::string(line_.substr(start, at_ - start));
    }
    std::string rest() {
        std::string text(line_.substr(at_));
        at_ = line_.size();
        return text;
    }
    // A quoted label value; only \\, \" and \n escapes are allowed.
    std::string quoted() {
        expect('"');
        std::string value;
        for (;;) {
            if (done()) fail("unterminated label value");
            const char c = line_[at_++];
            if (c == '"') return value;
            if (c != '\\') {
                value += c;
                continue;
            }
            if (done()) fail("unterminated escape");
            const char escaped = line_[at_++];
            if (escaped == '\\' || escaped == '"') {
                value += escaped;
            } else if (escaped == 'n') {
                value += '\n';
            } else {
                fail(std::string("invalid escape \\") + escaped);
            }
        }
    }

private:
    std::string_view line_;
    std::size_t number_;
    std::size_t at_ = 0;
};

double parse_value(LineReader& reader, const std::string& text) {
    if (text == "+Inf") return INFINITY;
    if (text == "-Inf") return -INFINITY;
    if (text == "NaN") return NAN;
    if (text.empty() || text.find(' ') != std::string::npos) {
        reader.fail("expected one value and nothing after it");
    }
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) reader.fail("malformed value '" + text + "'");
    return value;
}

struct Family {
    std::optional<std::string> help;
    std::optional<std::string> type;
    bool has_samples = false;
    bool closed = false;  // another family's lines came after its samples
};

// The family a sample name belongs to, given the families declared so far.
std::string family_of(const std::string& name, const std::map<std::string, Family>& families) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (name.size() > s.size() && name.ends_with(s)) {
            const std::string base = name.substr(0, name.size() - s.size());
            const auto it = families.find(base);
            if (it != families.end() && it->second.type == "histogram") return base;
        }
    }
    return name;
}

struct HistogramSeries {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count) in file order
    std::optional<double> count;
    bool has_sum = false;
};

void check_histograms(const std::map<std::string, HistogramSeries>& histograms) {
    for (const auto& entry : histograms) {
        // Named, not a structured binding: clang 14 cannot capture those in a lambda.
        const std::string& key = entry.first;
        const HistogramSeries& h = entry.second;
        auto fail = [&key](const std::string& why) {
            throw std::runtime_error("histogram " + key + ": " + why);
        };
        if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) fail("no +Inf bucket last");
        for (std::size_t i = 1; i < h.buckets.size(); ++i) {
            if (!(h.buckets[i].first > h.buckets[i - 1].first)) fail("le not increasing");
            if (h.buckets[i].second < h.buckets[i - 1].second) fail("buckets not cumulative");
        }
        if (!h.count || *h.count != h.buckets.back().second) fail("_count differs from +Inf");
        if (!h.has_sum) fail("no _sum");
    }
}

}  // namespace

std::string series_key(const std::string& name, const LabelSet& labels) {
    std::string key = name;
    if (labels.empty()) return key;
    key += '{';
    bool first = true;
    for (const auto& [label, value] : labels) {
        if (!first) key += ',';
        first = false;
        key += label + "=\"" + value + "\"";
    }
    return key + '}';
}

double Exposition::value(const std::string& name, const LabelSet& labels) const {
    const std::string key = series_key(name, labels);
    const auto it = samples.find(key);
    if (it == samples.end()) throw std::runtime_error("no series " + key);
    return it->second;
}

bool Exposition::has(const std::string& name, const LabelSet& labels) const {
    return samples.contains(series_key(name, labels));
}

Exposition parse_prometheus_text(std::string_view text) {
    if (!text.empty() && !text.ends_with('\n')) {
        throw std::runtime_error("the exposition does not end with a newline");
    }
    Exposition result;
    std::map<std::string, Family> families;
    std::map<std::string, HistogramSeries> histograms;
    std::string current;  // the family whose lines are being read
    auto enter = [&](const std::string& family) {
        if (family == current) return;
        if (!current.empty() && families[current].has_samples) families[current].closed = true;
        current = family;
    };

    std::size_t number = 0;
    for (std::size_t start = 0; start < text.size();) {
        const std::size_t end = text.find('\n', start);
        const std::string_view line = text.substr(start, end - start);
        start = end + 1;
        LineReader reader(line, ++number);
        if (line.empty()) reader.fail("empty line");

        if (line.starts_with('#')) {
            const bool help = line.starts_with("# HELP ");
            if (!help && !line.starts_with("# TYPE ")) reader.fail("not a HELP or TYPE line");
            reader.rest();
            LineReader fields(line.substr(7), number);
            const std::string name = fields.name(true);
            enter(name);
            Family& family = families[name];
            if (family.has_samples) reader.fail("HELP/TYPE after the family's samples");
            if (help) {
                if (family.help) reader.fail("second HELP for " + name);
                fields.expect(' ');
                const std::string doc = fields.rest();
                for (std::size_t i = 0; i < doc.size(); ++i) {
                    if (doc[i] == '\\' &&
                        (i + 1 == doc.size() || (doc[i + 1] != '\\' && doc[i + 1] != 'n'))) {
                        reader.fail("invalid escape in HELP");
                    }
                    if (doc[i] == '\\') ++i;
                }
                family.help = doc;
            } else {
                if (family.type) reader.fail("second TYPE for " + name);
                fields.expect(' ');
                const std::string type = fields.rest();
                static const std::set<std::string> types{"counter", "gauge", "histogram", "summary",
                                                         "untyped"};
                if (!types.contains(type)) reader.fail("unknown type '" + type + "'");
                family.type = type;
                result.types[name] = type;
            }
            continue;
        }

        const std::string name = reader.name(true);
        LabelSet labels;
        if (reader.peek('{')) {
            reader.expect('{');
            while (!reader.peek('}')) {
                const std::string label = reader.name(false);
                reader.expect('=');
                if (!labels.emplace(label, reader.quoted()).second) {
                    reader.fail("label " + label + " twice");
                }
                if (!reader.peek('}')) {
                    reader.expect(',');
                    if (reader.peek('}')) reader.fail("trailing comma");
                }
            }
            reader.expect('}');
        }
        reader.expect(' ');
        const double value = parse_value(reader, reader.rest());

        const std::string family_name = family_of(name, families);
        enter(family_name);
        Family& family = families[family_name];
        if (family.closed) reader.fail("samples of " + family_name + " are not contiguous");
        if (!family.help || !family.type)
            reader.fail("sample before HELP and TYPE of " + family_name);
        family.has_samples = true;
        const std::string key = series_key(name, labels);
        if (!result.samples.emplace(key, value).second) reader.fail("series twice: " + key);

        if (family.type == "histogram") {
            LabelSet series = labels;
            series.erase("le");
            HistogramSeries& h = histograms[series_key(family_name, series)];
            if (name.ends_with("_bucket")) {
                const auto le = labels.find("le");
                if (le == labels.end()) reader.fail("bucket without le");
                LineReader le_reader(le->second, number);
                h.buckets.emplace_back(parse_value(le_reader, le->second), value);
            } else if (name.ends_with("_count")) {
                h.count = value;
            } else if (name.ends_with("_sum")) {
                h.has_sum = true;
            } else {
                reader.fail("histogram sample that is no _bucket, _sum or _count");
            }
        }
    }
    check_histograms(histograms);
    return result;
}

}  // namespace fulcrum::test
