// libFuzzer target for the TLS ClientHello reader (tests/fuzz.sh builds and runs it).
// Beyond "no crash, no sanitizer report" (each input is parsed from a heap copy of its
// exact size, so a read past the end is caught) it checks the reader's contract and
// aborts when one is broken:
// - the incremental contract: the prefixes shorter than the first decided one are all
//   incomplete, and every longer prefix gives the same answer as that one;
// - a server name found is canonical (normalize_server_name leaves it unchanged).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "fulcrum/proto/server_name.hpp"
#include "fulcrum/proto/tls_client_hello.hpp"

using fulcrum::ClientHelloParse;
using Status = fulcrum::ClientHelloParse::Status;

namespace {

void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "invariant broken: %s\n", what);
        std::abort();
    }
}

ClientHelloParse parse_copy(const std::uint8_t* data, std::size_t size) {
    auto copy = std::make_unique<char[]>(size == 0 ? 1 : size);
    std::memcpy(copy.get(), data, size);
    return fulcrum::parse_client_hello(std::string_view(copy.get(), size));
}

bool same(const ClientHelloParse& a, const ClientHelloParse& b) {
    return a.status == b.status && a.hello.tls == b.hello.tls &&
           a.hello.server_name == b.hello.server_name;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ClientHelloParse whole = parse_copy(data, size);
    if (whole.status == Status::complete && whole.hello.server_name) {
        require(fulcrum::normalize_server_name(*whole.hello.server_name) == whole.hello.server_name,
                "a server name found is canonical");
    }
    // The shortest decided prefix, by bisection (the contract makes "decided" monotonic).
    std::size_t low = 0;  // incomplete
    std::size_t high = size;
    if (whole.status == Status::incomplete) return 0;
    while (high - low > 1) {
        const std::size_t mid = low + (high - low) / 2;
        (parse_copy(data, mid).status == Status::incomplete ? low : high) = mid;
    }
    const ClientHelloParse first = parse_copy(data, high);
    require(first.status != Status::incomplete, "the bisection ends on a decided prefix");
    require(same(first, whole), "a longer input gives the first decided answer");
    // A sample of the other prefixes, both sides of the decision.
    const std::size_t step = size / 16 + 1;
    for (std::size_t n = 0; n <= size; n += step) {
        const ClientHelloParse prefix = parse_copy(data, n);
        require(n < high ? prefix.status == Status::incomplete : same(prefix, whole),
                "prefixes are incomplete before the decision and agree after it");
    }
    return 0;
}
