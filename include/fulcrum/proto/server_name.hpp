#pragma once
// Server names as SNI routing compares them: a DNS host name (RFC 1123 labels of letters,
// digits, hyphens and underscores, at most 63 bytes each and 253 in all), lowercased and
// without its trailing dot. Patterns add "*.suffix" (one label or more before the suffix)
// and "*" (everything else).

#include <optional>
#include <string>
#include <string_view>

namespace fulcrum {

// The canonical form of a host name, or nothing when `name` is not one.
std::optional<std::string> normalize_server_name(std::string_view name);

// The canonical form of a pattern ("api.example.test", "*.example.test" or "*"), or
// nothing when it is not one.
std::optional<std::string> normalize_server_name_pattern(std::string_view pattern);

}  // namespace fulcrum
