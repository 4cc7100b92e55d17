#pragma once
// Pre-read phases: parsers over the first bytes a client sends, run before a backend is
// picked (as nginx's preread phase). A PROXY header is one; a TLS ClientHello reader is
// the next (routing by server name). A parser is incremental and pure: it is handed every byte so
// far and says incomplete (every byte can still begin a valid input), complete (how many bytes
// belong to the phase and are not forwarded; the rest goes to the backend first), or invalid.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "fulcrum/proto/proxy_protocol.hpp"
#include "fulcrum/proto/tls_client_hello.hpp"

namespace fulcrum {

// What the phases found out, for the session to act on.
struct PrereadFindings {
    std::optional<ProxyHeader> proxy;         // the PROXY header the peer sent
    std::optional<ClientHello> client_hello;  // what its first bytes say of TLS
};

struct PrereadResult {
    enum class Status { incomplete, complete, invalid };
    Status status = Status::incomplete;
    std::size_t consumed = 0;  // complete: the phase's own bytes, from the start
    std::string error;         // invalid: what is wrong, short, for a log line
};

class PrereadParser {
public:
    virtual ~PrereadParser() = default;
    // What it reads, for log lines: "PROXY header".
    virtual std::string_view what() const = 0;
    // It decides within this many bytes: more would be invalid.
    virtual std::size_t max_bytes() const = 0;
    // `bytes`: everything received so far. Fills `findings` when complete.
    virtual PrereadResult parse(std::string_view bytes, PrereadFindings& findings) const = 0;
};

// Runs one parser over bytes as they arrive, holding them until it decides.
class Preread {
public:
    explicit Preread(const PrereadParser& parser) : parser_(parser) {}

    const PrereadParser& parser() const { return parser_; }

    // The most the next read may take: the bytes beyond stay in the kernel until the
    // backend can take them.
    std::size_t room() const { return parser_.max_bytes() - buffer_.size(); }
    // Adds what was read (at most room()) and parses it all.
    PrereadResult feed(std::string_view bytes, PrereadFindings& findings);
    // After complete: the bytes received past the phase's own, to forward first.
    std::string take_rest();

private:
    const PrereadParser& parser_;
    std::string buffer_;
    std::size_t consumed_ = 0;
};

// The PROXY protocol header (v1 or v2) as a pre-read phase.
class ProxyHeaderParser final : public PrereadParser {
public:
    std::string_view what() const override { return "PROXY header"; }
    std::size_t max_bytes() const override;
    PrereadResult parse(std::string_view bytes, PrereadFindings& findings) const override;
};

// The TLS ClientHello as a pre-read phase: it consumes nothing, so that the backend,
// which terminates TLS, gets the hello untouched.
class ClientHelloReader final : public PrereadParser {
public:
    std::string_view what() const override { return "TLS ClientHello"; }
    std::size_t max_bytes() const override { return client_hello_max_bytes; }
    PrereadResult parse(std::string_view bytes, PrereadFindings& findings) const override;
};

}  // namespace fulcrum
