#include "fulcrum/descriptor_limit.hpp"

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace fulcrum {

std::uint64_t descriptors_needed(const Config& config, unsigned workers) {
    constexpr std::uint64_t margin = 64;  // admin (16 connections), probes, logs, eventfds
    const RuntimeConfig& runtime = config.runtime;
    return 2 * static_cast<std::uint64_t>(runtime.max_connections) +
           2 * static_cast<std::uint64_t>(runtime.splice_pipes) +
           static_cast<std::uint64_t>(config.services.size()) * workers + margin;
}

void ensure_descriptor_limit(std::uint64_t needed) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        spdlog::warn("cannot read the descriptor limit (RLIMIT_NOFILE): {}", std::strerror(errno));
        return;
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        const rlim_t before = limit.rlim_cur;
        const bool enough = limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= needed;
        limit.rlim_cur = enough ? needed : limit.rlim_max;
        if (limit.rlim_cur > before && setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            spdlog::warn("cannot raise the descriptor limit from {} to {}: {}", before,
                         limit.rlim_cur, std::strerror(errno));
            limit.rlim_cur = before;
        } else if (limit.rlim_cur > before) {
            spdlog::info("descriptor limit raised from {} to {}", before, limit.rlim_cur);
        }
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        spdlog::warn(
            "descriptor limit {} is below the {} that max_connections and splice_pipes may use "
            "(2 per connection, 2 per pipe, plus listeners and a margin); past it, accepting "
            "pauses. Raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower max_connections",
            limit.rlim_cur, needed);
    }
}

}  // namespace fulcrum
