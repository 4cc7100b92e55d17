#include "fulcrum/discovery/etcd_client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <exception>
#include <optional>

namespace fulcrum {
namespace {

using nlohmann::json;

// A quiet watch is normal (nothing changes); a dead peer is found by TCP keepalive
// (below), and this only bounds a peer that keeps the connection but stopped answering.
constexpr auto watch_read_timeout = std::chrono::minutes(15);

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64_decode(std::string_view text) {
    if (text.empty()) return {};
    std::string out(3 * ((text.size() + 3) / 4), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) throw EtcdError(fmt::format("invalid base64 from etcd: {}", text));
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t length = static_cast<std::size_t>(n);
    for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) --length;
    out.resize(length);
    return out;
}

// Where the keys under `prefix` end: the prefix with its last byte that is not 0xff
// incremented, and what follows it dropped ("\0": every key, for a prefix of 0xff only).
std::string prefix_range_end(std::string prefix) {
    while (!prefix.empty()) {
        auto& last = reinterpret_cast<unsigned char&>(prefix.back());
        if (last < 0xff) {
            ++last;
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');
}

// The gateway writes 64-bit integers as strings and leaves out those that are 0.
std::int64_t int64_field(const json& object, const char* key) {
    const auto found = object.find(key);
    if (found == object.end()) return 0;
    if (found->is_string()) return std::stoll(found->get<std::string>());
    return found->get<std::int64_t>();
}

EtcdKeyValue key_value(const json& kv) {
    return {base64_decode(kv.value("key", "")), base64_decode(kv.value("value", ""))};
}

// Throws EtcdError for an answer that is {"error": ...} (or, from a stream, {"error"}
// inside {"result"}).
void check_error(const json& answer, const std::string& what) {
    const auto error = answer.find("error");
    if (error == answer.end()) return;
    const std::string message =
        error->is_object() ? error->value("message", error->dump()) : error->dump();
    throw EtcdError(fmt::format("{}: {}", what, message));
}

json parse_answer(const std::string& body, const std::string& what) {
    json answer = json::parse(body, nullptr, false);
    if (answer.is_discarded() || !answer.is_object()) {
        throw EtcdError(fmt::format("{}: not a JSON object: {}", what, body.substr(0, 200)));
    }
    check_error(answer, what);
    return answer;
}

void set_timeouts(httplib::Client& client, Duration connect, Duration read) {
    client.set_connection_timeout(std::chrono::milliseconds(connect.count()));
    client.set_read_timeout(std::chrono::milliseconds(read.count()));
    client.set_write_timeout(std::chrono::milliseconds(connect.count()));
    client.set_keep_alive(false);
}

}  // namespace

EtcdCompacted::EtcdCompacted(std::int64_t compact_revision)
    : EtcdError(fmt::format("the watch's revision was compacted (etcd keeps {} and later)",
                            compact_revision)) {}

EtcdClient::EtcdClient(std::vector<std::string> endpoints, Duration timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout) {
    if (endpoints_.empty()) throw std::invalid_argument("etcd: no endpoints");
}

EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::endpoint() const {
    return endpoints_[current_.load() % endpoints_.size()];
}

void EtcdClient::begin(httplib::Client* client) {
    std::lock_guard lock(mutex_);
    if (stopped_) throw EtcdError("stopped");
    active_ = client;
}

void EtcdClient::end() {
    std::lock_guard lock(mutex_);
    active_ = nullptr;
}

void EtcdClient::stop() {
    stopped_ = true;
    std::lock_guard lock(mutex_);
    // httplib's stop() shuts the socket of a request in progress down, which makes its
    // blocking read return; one that has not connected yet sees stopped_ when etcd's
    // first bytes arrive (etcd answers every request, a watch's creation too, at once).
    if (active_ != nullptr) active_->stop();
}

std::string EtcdClient::post(const std::string& path, const std::string& body) {
    std::vector<std::string> failures;
    for (std::size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
        const std::size_t index = current_.load() % endpoints_.size();
        const std::string& endpoint = endpoints_[index];
        httplib::Client client(endpoint);
        set_timeouts(client, timeout_, timeout_);
        begin(&client);
        const httplib::Result result = client.Post(path.c_str(), body, "application/json");
        end();
        if (stopped_) throw EtcdError("stopped");
        if (result) {
            // etcd answered: the request is at fault, another endpoint would say the same.
            if (result->status == 200) return result->body;
            const json answer = json::parse(result->body, nullptr, false);
            std::string message = result->body.substr(0, 200);
            if (answer.is_object() && answer.contains("message")) {
                message = answer["message"].dump();
            } else if (answer.is_object() && answer.contains("error")) {
                message = answer["error"].dump();
            }
            throw EtcdError(
                fmt::format("{}{}: status {}: {}", endpoint, path, result->status, message));
        }
        failures.push_back(fmt::format("{}: {}", endpoint, httplib::to_string(result.error())));
        current_.store((index + 1) % endpoints_.size());
    }
    throw EtcdError(fmt::format("{}: no endpoint answered ({})", path, fmt::join(failures, "; ")));
}

EtcdListing EtcdClient::range_prefix(const std::string& prefix) {
    const json request = {{"key", base64_encode(prefix)},
                          {"range_end", base64_encode(prefix_range_end(prefix))}};
    const json answer = parse_answer(post("/v3/kv/range", request.dump()), "range");
    EtcdListing listing;
    listing.revision = int64_field(answer.value("header", json::object()), "revision");
    for (const json& kv : answer.value("kvs", json::array())) listing.kvs.push_back(key_value(kv));
    return listing;
}

void EtcdClient::watch_prefix(const std::string& prefix, std::int64_t start_revision,
                              const std::function<void()>& on_created,
                              const Progress& on_progress) {
    const std::size_t index = current_.load() % endpoints_.size();
    const std::string& endpoint = endpoints_[index];
    httplib::Client client(endpoint);
    set_timeouts(client, timeout_, watch_read_timeout);
    // A peer that went away without a FIN (a host down, a cable cut) is found in ~30 s.
    client.set_socket_options([](int fd) {
        const int on = 1;
        const int idle = 10;
        const int interval = 5;
        const int count = 4;
        ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    });
    const json create = {{"create_request",
                          {{"key", base64_encode(prefix)},
                           {"range_end", base64_encode(prefix_range_end(prefix))},
                           {"start_revision", start_revision},
                           {"progress_notify", true}}}};
    httplib::Request request;
    request.method = "POST";
    request.path = "/v3/watch";
    request.body = create.dump();
    request.set_header("Content-Type", "application/json");
    // The stream is one JSON object a line; a line may come in several pieces.
    std::string pending;
    std::exception_ptr failure;
    const auto on_line = [&](const std::string& line) {
        const json message = parse_answer(line, "watch");
        const json result = message.value("result", json::object());
        check_error(result, "watch");
        const std::int64_t revision =
            int64_field(result.value("header", json::object()), "revision");
        if (result.value("canceled", false)) {
            if (const std::int64_t compacted = int64_field(result, "compact_revision");
                compacted > 0) {
                throw EtcdCompacted(compacted);
            }
            throw EtcdError(fmt::format("watch canceled by etcd: {}",
                                        result.value("cancel_reason", std::string("no reason"))));
        }
        if (result.value("created", false)) {
            on_created();
            return;
        }
        std::vector<EtcdEvent> events;
        std::int64_t latest = revision;  // a progress notice's, else its last event's
        for (const json& event : result.value("events", json::array())) {
            const json kv = event.value("kv", json::object());
            events.push_back({event.value("type", std::string("PUT")) == "DELETE", key_value(kv),
                              int64_field(kv, "mod_revision")});
            latest = events.back().revision;
        }
        on_progress(latest, std::move(events));
    };
    request.content_receiver = [&](const char* data, std::size_t length, std::uint64_t,
                                   std::uint64_t) {
        if (stopped_) return false;
        pending.append(data, length);
        std::size_t newline;
        while ((newline = pending.find('\n')) != std::string::npos) {
            const std::string line = pending.substr(0, newline);
            pending.erase(0, newline + 1);
            if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
            try {
                on_line(line);
            } catch (...) {
                // Not through httplib: it is left by returning false.
                failure = std::current_exception();
                return false;
            }
        }
        return true;
    };
    begin(&client);
    const httplib::Result result = client.send(request);
    end();
    if (stopped_) return;
    if (failure) std::rethrow_exception(failure);
    current_.store((index + 1) % endpoints_.size());  // the next attempt tries another
    if (!result) {
        throw EtcdError(fmt::format("{}: watch: {}", endpoint, httplib::to_string(result.error())));
    }
    throw EtcdError(
        fmt::format("{}: watch: the stream ended (status {})", endpoint, result->status));
}

std::int64_t EtcdClient::grant_lease(std::int64_t ttl_seconds) {
    const json answer =
        parse_answer(post("/v3/lease/grant", json{{"TTL", ttl_seconds}}.dump()), "lease grant");
    const std::int64_t id = int64_field(answer, "ID");
    if (id == 0) throw EtcdError("lease grant: no ID in the answer");
    return id;
}

bool EtcdClient::keep_alive(std::int64_t lease) {
    const json answer = parse_answer(
        post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump()), "keepalive");
    const json result = answer.value("result", json::object());
    check_error(result, "keepalive");
    return int64_field(result, "TTL") > 0;
}

void EtcdClient::revoke_lease(std::int64_t lease) {
    parse_answer(post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump()),
                 "lease revoke");
}

void EtcdClient::put(const std::string& key, const std::string& value, std::int64_t lease) {
    json request = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) request["lease"] = std::to_string(lease);
    parse_answer(post("/v3/kv/put", request.dump()), "put");
}

void EtcdClient::remove(const std::string& key) {
    parse_answer(post("/v3/kv/deleterange", json{{"key", base64_encode(key)}}.dump()), "delete");
}

}  // namespace fulcrum
