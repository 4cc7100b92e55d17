#pragma once
// A strict parser of the Prometheus text exposition format 0.0.4, for tests. It is
// stricter than the format where fulcrum has no reason to differ: it rejects comments
// other than HELP and TYPE, timestamps, and trailing commas in label sets. It throws
// std::runtime_error naming the line and the rule broken:
//   - every sample line is `name{label="value",...} value` (labels optional);
//   - names and label names use the allowed characters; label values escape only
//     backslash, double quote and newline;
//   - every family has exactly one HELP and one TYPE, both before its first sample,
//     and its samples are contiguous; no series appears twice;
//   - histograms have _bucket samples with an `le` label in increasing order, cumulative
//     counts that never decrease, a +Inf bucket equal to _count, and a _sum.

#include <map>
#include <string>
#include <string_view>

namespace fulcrum::test {

using LabelSet = std::map<std::string, std::string>;  // unescaped values

struct Exposition {
    std::map<std::string, std::string> types;  // family -> counter, gauge, histogram, ...
    std::map<std::string, double> samples;     // series_key(...) -> value

    // The value of one series; throws when it is absent.
    double value(const std::string& name, const LabelSet& labels = {}) const;
    bool has(const std::string& name, const LabelSet& labels = {}) const;
};

// "name{a="x",b="y"}" with labels sorted and values unescaped: one key per series.
std::string series_key(const std::string& name, const LabelSet& labels);

Exposition parse_prometheus_text(std::string_view text);

}  // namespace fulcrum::test
