#include "fulcrum/stats/metrics.hpp"

#include <dirent.h>

namespace fulcrum {

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
