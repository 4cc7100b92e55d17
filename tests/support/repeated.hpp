#pragma once
// Text built by repetition, for inputs that are large or deep by construction.

#include <cstddef>
#include <string>
#include <string_view>

namespace fulcrum::test {

// `part` written `count` times.
inline std::string repeated(std::string_view part, std::size_t count) {
    std::string out;
    out.reserve(part.size() * count);
    for (std::size_t i = 0; i < count; ++i) out += part;
    return out;
}

}  // namespace fulcrum::test
