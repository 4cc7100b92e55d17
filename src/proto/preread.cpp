#include "fulcrum/proto/preread.hpp"

#include <algorithm>

namespace fulcrum {

PrereadResult Preread::feed(std::string_view bytes, PrereadFindings& findings) {
    buffer_.append(bytes.substr(0, room()));
    PrereadResult result = parser_.parse(buffer_, findings);
    if (result.status == PrereadResult::Status::incomplete && room() == 0) {
        // A parser that is still undecided at its own bound: the input is not one.
        result = {PrereadResult::Status::invalid, 0,
                  "no complete " + std::string(parser_.what()) + " within " +
                      std::to_string(parser_.max_bytes()) + " bytes"};
    }
    if (result.status == PrereadResult::Status::complete) consumed_ = result.consumed;
    return result;
}

std::string Preread::take_rest() {
    std::string rest = buffer_.substr(std::min(consumed_, buffer_.size()));
    buffer_ = std::string();
    consumed_ = 0;
    return rest;
}

std::size_t ProxyHeaderParser::max_bytes() const {
    return std::max(proxy_v1_max_header, proxy_v2_max_header);
}

PrereadResult ProxyHeaderParser::parse(std::string_view bytes, PrereadFindings& findings) const {
    ProxyParse parse = parse_proxy_header(bytes);
    switch (parse.status) {
        case ProxyParse::Status::incomplete:
            return {};
        case ProxyParse::Status::invalid:
            return {PrereadResult::Status::invalid, 0, std::move(parse.error)};
        case ProxyParse::Status::complete:
            findings.proxy = parse.header;
            return {PrereadResult::Status::complete, parse.length, {}};
    }
    return {};
}

PrereadResult ClientHelloReader::parse(std::string_view bytes, PrereadFindings& findings) const {
    ClientHelloParse parse = parse_client_hello(bytes);
    switch (parse.status) {
        case ClientHelloParse::Status::incomplete:
            return {};
        case ClientHelloParse::Status::invalid:
            return {PrereadResult::Status::invalid, 0, std::move(parse.error)};
        case ClientHelloParse::Status::complete:
            findings.client_hello = std::move(parse.hello);
            return {PrereadResult::Status::complete, 0, {}};
    }
    return {};
}

}  // namespace fulcrum
