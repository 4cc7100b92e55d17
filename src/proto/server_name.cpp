#include "fulcrum/proto/server_name.hpp"

namespace fulcrum {

namespace {

constexpr std::size_t max_name = 253;
constexpr std::size_t max_label = 63;

bool label_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

std::optional<std::string> normalize_server_name(std::string_view name) {
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty() || name.size() > max_name) return std::nullopt;
    std::string canonical;
    canonical.reserve(name.size());
    std::size_t label = 0;
    for (char c : name) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c == '.') {
            // No empty label, none that begins or ends with a hyphen.
            if (label == 0 || canonical.back() == '-') return std::nullopt;
            label = 0;
        } else {
            if (!label_character(c) || (label == 0 && c == '-') || ++label > max_label) {
                return std::nullopt;
            }
        }
        canonical += c;
    }
    // "a.." loses one dot, not two: its last label is empty.
    if (label == 0 || canonical.back() == '-') return std::nullopt;
    return canonical;
}

std::optional<std::string> normalize_server_name_pattern(std::string_view pattern) {
    if (pattern == "*") return std::string(pattern);
    if (pattern.starts_with("*.")) {
        std::optional<std::string> suffix = normalize_server_name(pattern.substr(2));
        if (!suffix) return std::nullopt;
        return "*." + *suffix;
    }
    return normalize_server_name(pattern);
}

}  // namespace fulcrum
