#include "admin_client.hpp"

#include <httplib.h>

#include <catch2/catch.hpp>
#include <stdexcept>

namespace fulcrum::test {

using namespace std::chrono_literals;

Reply admin_request(std::uint16_t port, const std::string& method, const std::string& path,
                    const std::string& token, const std::string& body) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(5s);
    client.set_read_timeout(10s);
    client.set_keep_alive(false);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::Result result = method == "POST"
                                 ? client.Post(path.c_str(), headers, body,
                                               body.empty() ? "text/plain" : "application/json")
                                 : client.Get(path.c_str(), headers);
    if (!result) {
        throw std::runtime_error(method + " " + path + ": " + httplib::to_string(result.error()));
    }
    Reply reply{result->status, result->body, {}};
    for (const auto& [name, value] : result->headers) reply.headers[name] = value;
    return reply;
}

Exposition scrape(std::uint16_t port, const std::string& token) {
    const Reply reply = admin_request(port, "GET", "/metrics", token);
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    return parse_prometheus_text(reply.body);
}

nlohmann::json status_of(std::uint16_t port) {
    const Reply reply = admin_request(port, "GET", "/status");
    REQUIRE(reply.status == 200);
    return nlohmann::json::parse(reply.body);
}

nlohmann::json backend_status(std::uint16_t port, std::size_t index) {
    return status_of(port)["services"][0]["backends"][index];
}

Fulcrum start_with_admin(const std::vector<ServiceSpec>& services, std::uint16_t admin,
                         const std::string& runtime, const std::string& admin_lines) {
    std::vector<std::uint16_t> ports{admin};
    for (const ServiceSpec& s : services) ports.push_back(s.listen);
    return Fulcrum(with_admin(config_for(services, runtime), admin, admin_lines), ports);
}

}  // namespace fulcrum::test
