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
