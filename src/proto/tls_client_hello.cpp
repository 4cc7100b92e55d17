#include "fulcrum/proto/tls_client_hello.hpp"

#include <algorithm>
#include <cstdint>

#include "fulcrum/proto/server_name.hpp"

namespace fulcrum {

namespace {

constexpr unsigned char handshake_record = 0x16;
constexpr unsigned char client_hello_message = 0x01;
constexpr std::size_t record_header = 5;
constexpr std::size_t handshake_header = 4;
// A record's plaintext is at most 2^14 bytes (RFC 8446 5.1).
constexpr std::size_t max_record_payload = 16384;
constexpr std::uint16_t server_name_extension = 0;
constexpr unsigned char host_name_type = 0;

using Status = ClientHelloParse::Status;

ClientHelloParse invalid(std::string error) {
    return {Status::invalid, {}, std::move(error)};
}

ClientHelloParse complete(ClientHello hello) {
    return {Status::complete, std::move(hello), {}};
}

unsigned byte_at(std::string_view data, std::size_t i) {
    return static_cast<unsigned char>(data[i]);
}

// Reads big-endian fields of a ClientHello body; a read past the end fails.
class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}

    std::size_t left() const { return data_.size(); }
    bool number(std::size_t bytes, std::size_t& out) {
        if (data_.size() < bytes) return false;
        out = 0;
        for (std::size_t i = 0; i < bytes; ++i) out = (out << 8) | byte_at(data_, i);
        data_.remove_prefix(bytes);
        return true;
    }
    bool bytes(std::size_t count, std::string_view& out) {
        if (data_.size() < count) return false;
        out = data_.substr(0, count);
        data_.remove_prefix(count);
        return true;
    }
    // A vector whose length takes `length_bytes`: its contents.
    bool vector(std::size_t length_bytes, std::string_view& out) {
        std::size_t length = 0;
        return number(length_bytes, length) && bytes(length, out);
    }

private:
    std::string_view data_;
};

// The server_name extension's body: its host_name, canonical.
ClientHelloParse read_server_name(std::string_view body, ClientHello& hello) {
    Reader reader(body);
    std::string_view list;
    if (!reader.vector(2, list) || reader.left() != 0 || list.empty()) {
        return invalid("malformed server_name extension");
    }
    Reader names(list);
    while (names.left() > 0) {
        std::size_t type = 0;
        std::string_view name;
        if (!names.number(1, type) || !names.vector(2, name) || name.empty()) {
            return invalid("malformed server_name list");
        }
        if (type != host_name_type) continue;
        if (hello.server_name) return invalid("two host names in server_name");
        hello.server_name = normalize_server_name(name);
        if (!hello.server_name) return invalid("server_name is not a host name");
    }
    return complete(hello);
}

// The handshake message's body, after its type and length.
ClientHelloParse read_body(std::string_view body) {
    ClientHello hello{true, std::nullopt};
    Reader reader(body);
    std::size_t version = 0;
    std::string_view random;
    std::string_view session_id;
    std::string_view cipher_suites;
    std::string_view compression;
    if (!reader.number(2, version) || !reader.bytes(32, random) || !reader.vector(1, session_id) ||
        !reader.vector(2, cipher_suites) || !reader.vector(1, compression)) {
        return invalid("truncated ClientHello");
    }
    if ((version >> 8) != 3) return invalid("ClientHello version is not TLS");
    if (session_id.size() > 32) return invalid("session id longer than 32 bytes");
    if (cipher_suites.empty() || cipher_suites.size() % 2 != 0) {
        return invalid("malformed cipher suite list");
    }
    if (compression.empty()) return invalid("no compression method");
    // TLS 1.0 and 1.1 clients may end here: no extensions.
    if (reader.left() == 0) return complete(hello);
    std::string_view extensions;
    if (!reader.vector(2, extensions) || reader.left() != 0) {
        return invalid("extensions do not fill the ClientHello");
    }
    Reader items(extensions);
    bool seen_server_name = false;
    while (items.left() > 0) {
        std::size_t type = 0;
        std::string_view data;
        if (!items.number(2, type) || !items.vector(2, data)) {
            return invalid("malformed extension");
        }
        if (type != server_name_extension) continue;
        if (seen_server_name) return invalid("two server_name extensions");
        seen_server_name = true;
        ClientHelloParse parsed = read_server_name(data, hello);
        if (parsed.status == Status::invalid) return parsed;
    }
    return complete(std::move(hello));
}

// An SSLv2-compatible hello (RFC 5246 E.2): a two-byte length with the top bit set, then
// message type 1 and a version whose major is 2 or 3. `data` begins with a top bit set.
ClientHelloParse read_sslv2(std::string_view data) {
    if (data.size() < 4) return {};
    if (byte_at(data, 2) == client_hello_message &&
        (byte_at(data, 3) == 2 || byte_at(data, 3) == 3)) {
        return complete({true, std::nullopt});
    }
    return complete({false, std::nullopt});
}

}  // namespace

ClientHelloParse parse_client_hello(std::string_view data) {
    if (data.empty()) return {};
    if (byte_at(data, 0) != handshake_record) {
        if ((byte_at(data, 0) & 0x80) != 0) return read_sslv2(data);
        return complete({false, std::nullopt});
    }
    // Walks the record headers, gathering the handshake bytes they carry. Only the
    // headers are looked at until the whole message is there, so that a hello arriving a
    // byte at a time costs one pass over its records per read, not a copy.
    std::size_t payload = 0;       // handshake bytes available, over every record so far
    std::size_t message_size = 0;  // type and length included, once they are known
    unsigned char header[handshake_header];
    std::size_t offset = 0;
    while (offset < data.size()) {
        const auto* record = reinterpret_cast<const unsigned char*>(data.data() + offset);
        const std::size_t have = data.size() - offset;
        // Checked as soon as they arrive, so that a wrong byte fails without waiting.
        if (record[0] != handshake_record) {
            return invalid("non-handshake record before the hello ended");
        }
        if (have >= 2 && record[1] != 3) return invalid("record version is not TLS");
        if (have < record_header) break;
        const std::size_t length = (std::size_t{record[3]} << 8) | record[4];
        if (length == 0 || length > max_record_payload) return invalid("bad record length");
        const std::size_t here = std::min(length, data.size() - offset - record_header);
        for (std::size_t i = 0; i < here && payload + i < handshake_header; ++i) {
            header[payload + i] = record[record_header + i];
        }
        payload += here;
        offset += record_header + length;
        if (message_size == 0 && payload >= handshake_header) {
            if (header[0] != client_hello_message)
                return invalid("first handshake message is not a ClientHello");
            message_size = handshake_header + ((std::size_t{header[1]} << 16) |
                                               (std::size_t{header[2]} << 8) | header[3]);
            if (message_size + record_header > client_hello_max_bytes) {
                return invalid("ClientHello longer than 16 KiB");
            }
        }
        if (message_size != 0 && payload >= message_size) break;
    }
    if (message_size == 0 || payload < message_size) return {};
    // The whole message is there: copy it out of its records once.
    std::string message;
    message.reserve(message_size);
    for (std::size_t at = 0; message.size() < message_size;) {
        const std::size_t length = (byte_at(data, at + 3) << 8) | byte_at(data, at + 4);
        const std::size_t here =
            std::min({length, data.size() - at - record_header, message_size - message.size()});
        message.append(data.substr(at + record_header, here));
        at += record_header + length;
    }
    return read_body(std::string_view(message).substr(handshake_header));
}

}  // namespace fulcrum
