#include "fulcrum/lb/server_name_router.hpp"

namespace fulcrum {

void ServerNameRouter::add(const std::string& pattern, std::size_t target) {
    if (pattern == "*") {
        if (!rest_) rest_ = target;
    } else if (pattern.starts_with("*.")) {
        suffixes_.emplace(pattern.substr(2), target);
    } else {
        exact_.emplace(pattern, target);
    }
}

std::optional<std::size_t> ServerNameRouter::route(std::optional<std::string_view> name) const {
    if (!name) return rest_;
    // Heterogeneous lookup of unordered_map needs C++20 transparent hashing, which
    // libstdc++ 12 lacks: one string per connection, at most 253 bytes.
    std::string key(*name);
    if (const auto exact = exact_.find(key); exact != exact_.end()) return exact->second;
    // The suffixes after each dot, longest first: "a.b.example.test" tries
    // "b.example.test", then "example.test", then "test".
    for (std::size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
        if (const auto wildcard = suffixes_.find(key.substr(dot + 1));
            wildcard != suffixes_.end()) {
            return wildcard->second;
        }
    }
    return rest_;
}

}  // namespace fulcrum
