#pragma once
// Which service of a shared listen address a server name goes to, as nginx's `map` with
// hostnames and HAProxy's req.ssl_sni rules route: an exact name first, then the longest
// "*.suffix" that matches (one label or more before the suffix, never the suffix alone),
// then "*", which also takes connections with no name. Pure: no sockets, no state.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace fulcrum {

class ServerNameRouter {
public:
    // `pattern` canonical (normalize_server_name_pattern); `target` what route() gives for
    // the names it matches. A pattern added twice keeps its first target (the
    // configuration rejects that anyway).
    void add(const std::string& pattern, std::size_t target);
    // `name` canonical (normalize_server_name), or none: the client sent no server name.
    std::optional<std::size_t> route(std::optional<std::string_view> name) const;

private:
    std::unordered_map<std::string, std::size_t> exact_;
    std::unordered_map<std::string, std::size_t> suffixes_;  // "*.example.test" as "example.test"
    std::optional<std::size_t> rest_;                        // "*"
};

}  // namespace fulcrum
