#pragma once
// A client of fulcrum's admin endpoint for the integration tests: fulcrum started with an
// [admin] table, requests with an optional bearer token, and /status read as JSON.

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/prometheus_text.hpp"
#include "harness.hpp"
#include "proxy_fixture.hpp"

namespace fulcrum::test {

struct Reply {
    int status;
    std::string body;
    std::map<std::string, std::string> headers;  // the last value of each name
};

// One GET or POST (with `body`, as JSON when it is not empty) to the admin endpoint on
// 127.0.0.1:port, with a bearer token if given.
Reply admin_request(std::uint16_t port, const std::string& method, const std::string& path,
                    const std::string& token = "", const std::string& body = "");

// GET /metrics, parsed by the strict Prometheus parser (a failed Catch2 REQUIRE unless
// it answers 200).
Exposition scrape(std::uint16_t port, const std::string& token = "");

// GET /status, parsed (a failed Catch2 REQUIRE unless it answers 200).
nlohmann::json status_of(std::uint16_t port);

// The /status entry of backend `index` of the first service.
nlohmann::json backend_status(std::uint16_t port, std::size_t index);

// fulcrum in front of `services` with the admin endpoint on 127.0.0.1:admin.
Fulcrum start_with_admin(const std::vector<ServiceSpec>& services, std::uint16_t admin,
                         const std::string& runtime = "", const std::string& admin_lines = "");

}  // namespace fulcrum::test
