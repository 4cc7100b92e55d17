#pragma once
// SplitMix64's finalizer: a counter or a key in, well-mixed bits out. Cheap and
// stateless, so threads can draw from one atomic counter without locks (random-two) and
// hash keys into shards (the per-source table).

#include <cstdint>

namespace fulcrum {

constexpr std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace fulcrum
