#pragma once
// ClientHellos for the tests: the ones captured from openssl s_client and curl (the
// fuzz corpus, tests/fuzz/corpus/tls_client_hello/), and variants made from them: a
// padding extension that makes one larger than a TCP segment, and the handshake message
// fragmented over several TLS records.

#include <cstddef>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fulcrum::test {

// A captured hello (one TLS record) by file name, e.g. "openssl-tls13-sni.bin".
inline std::string captured_client_hello(const std::string& name) {
    std::ifstream file(FULCRUM_SOURCE_ROOT "/tests/fuzz/corpus/tls_client_hello/" + name,
                       std::ios::binary);
    if (!file) throw std::runtime_error("no captured ClientHello " + name);
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

namespace client_hello_detail {

inline std::size_t get(const std::string& s, std::size_t at, std::size_t bytes) {
    std::size_t value = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        value = (value << 8) | static_cast<unsigned char>(s[at + i]);
    return value;
}

inline void put(std::string& s, std::size_t at, std::size_t bytes, std::size_t value) {
    for (std::size_t i = 0; i < bytes; ++i) {
        s[at + bytes - 1 - i] = static_cast<char>((value >> (8 * i)) & 0xff);
    }
}

}  // namespace client_hello_detail

// `hello` (one record, with extensions) with a padding extension (RFC 7685) of `size`
// zero bytes appended: every length on the way grows with it.
inline std::string with_padding(std::string hello, std::size_t size) {
    using namespace client_hello_detail;
    std::size_t at = 5 + 4 + 2 + 32;
    at += 1 + get(hello, at, 1);  // session id
    at += 2 + get(hello, at, 2);  // cipher suites
    at += 1 + get(hello, at, 1);  // compression methods
    const std::size_t added = 4 + size;
    put(hello, at, 2, get(hello, at, 2) + added);  // extensions
    put(hello, 6, 3, get(hello, 6, 3) + added);    // handshake message
    put(hello, 3, 2, get(hello, 3, 2) + added);    // record
    hello += std::string("\x00\x15", 2);
    hello += static_cast<char>(size >> 8);
    hello += static_cast<char>(size & 0xff);
    hello += std::string(size, '\0');
    return hello;
}

// The handshake message of `hello` (one record) carried in records of at most `chunk`
// bytes each.
inline std::string fragmented(const std::string& hello, std::size_t chunk) {
    const std::string_view message = std::string_view(hello).substr(5);
    std::string out;
    for (std::size_t at = 0; at < message.size(); at += chunk) {
        const std::string_view part = message.substr(at, chunk);
        out += hello.substr(0, 3);
        out += static_cast<char>(part.size() >> 8);
        out += static_cast<char>(part.size() & 0xff);
        out += part;
    }
    return out;
}

}  // namespace fulcrum::test
