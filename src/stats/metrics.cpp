#include "fulcrum/stats/metrics.hpp"

#include <dirent.h>

namespace fulcrum {

std::string_view to_string(Rejection reason) {
    switch (reason) {
        case Rejection::queue_full:
            return "queue_full";
        case Rejection::queue_timeout:
            return "queue_timeout";
        case Rejection::per_source:
            return "per_source";
        case Rejection::rate:
            return "rate";
    }
    return "unknown";
}

std::string_view to_string(PrereadFailure reason) {
    switch (reason) {
        case PrereadFailure::proxy_header:
            return "proxy_header";
        case PrereadFailure::malformed:
            return "malformed";
        case PrereadFailure::timeout:
            return "timeout";
        case PrereadFailure::closed:
            return "closed";
        case PrereadFailure::not_tls:
            return "not_tls";
        case PrereadFailure::no_match:
            return "no_match";
        case PrereadFailure::refused:
            return "refused";
    }
    return "unknown";
}

std::optional<std::uint64_t> count_open_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return std::nullopt;
    std::uint64_t count = 0;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    return count - 1;  // not the descriptor that listed the directory
}

}  // namespace fulcrum
