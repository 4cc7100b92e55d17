// The admin endpoint's status page, in Debian's headless Chromium driven through the
// DevTools protocol (tests/browser/status_page.mjs, playwright-core): backends listed up,
// a connection rate after traffic, a stopped backend shown down, drain from its button,
// charts with points, phone width, dark mode, no request outside the admin endpoint, and a
// screenshot in the build directory; then the page without JavaScript, and with a token.

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "admin_client.hpp"
#include "harness.hpp"
#include "net.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// As in test_admin.cpp: a slow answer under ThreadSanitizer must not take a backend down.
const std::string fast_probes = "interval = \"1s\"\ntimeout = \"900ms\"\nrise = 1\nfall = 2";

const std::string browser_script = FULCRUM_SOURCE_ROOT "/tests/browser/status_page.mjs";

// What the browser test needs, or why it cannot run (tests/install-deps.sh installs it).
std::string missing_browser_tools() {
    namespace fs = std::filesystem;
    if (!fs::exists("/usr/bin/chromium")) return "/usr/bin/chromium (Debian chromium)";
    if (!fs::exists("/usr/bin/node")) return "/usr/bin/node (Debian nodejs)";
    if (!fs::exists(FULCRUM_SOURCE_ROOT "/tests/browser/node_modules/playwright-core")) {
        return "tests/browser/node_modules (npm ci --prefix tests/browser)";
    }
    return "";
}

}  // namespace

TEST_CASE("the status page shows every backend live and drains one from its button",
          "[admin][page]") {
    const std::string missing = missing_browser_tools();
    if (!missing.empty()) FAIL("missing " << missing << ": run tests/install-deps.sh");
    DemoBackend alpha("alpha");
    DemoBackend beta("beta");
    DemoBackend gamma("gamma");
    ServiceSpec service = service_to({alpha.port(), beta.port(), gamma.port()});
    service.health = fast_probes;
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin({service}, admin);

    const std::string screenshot = FULCRUM_BUILD_ROOT "/status-page.png";
    std::filesystem::remove(screenshot);
    const json options = {{"admin", "http://127.0.0.1:" + std::to_string(admin)},
                          {"listen", service.listen},
                          {"stop_pid", gamma.process().pid()},
                          {"first_backend", "alpha"},
                          {"screenshot", screenshot}};
    ChildProcess browser({"/usr/bin/node", browser_script, options.dump()});
    const auto code = browser.wait_exit(180s);
    INFO(browser.output());
    CHECK(code == 0);
    // What the page showed is what the endpoint says.
    CHECK(backend_status(admin, 1)["admin_state"] == "drained");
    CHECK(backend_status(admin, 2)["health"] == "down");
    CHECK(std::filesystem::exists(screenshot));
    CHECK(fulcrum.process().output().find("backend b1 drained") != std::string::npos);
}

TEST_CASE("the status page shows its table without JavaScript, and no data without the token",
          "[admin][page]") {
    NamedEcho a("a");
    ServiceSpec service = service_to({a.port()});
    const std::uint16_t admin = free_port();

    SECTION("no token: the table is rendered on the server") {
        Fulcrum fulcrum = start_with_admin({service}, admin);
        const Reply page = admin_request(admin, "GET", "/");
        REQUIRE(page.status == 200);
        CHECK(page.headers.at("Content-Type") == "text/html; charset=utf-8");
        CHECK(page.headers.at("Content-Security-Policy").find("default-src 'none'") !=
              std::string::npos);
        const std::string& html = page.body;
        const auto noscript = html.find("<noscript>");
        REQUIRE(noscript != std::string::npos);
        const std::string table = html.substr(noscript, html.find("</noscript>") - noscript);
        CHECK(table.find("<h2>svc</h2>") != std::string::npos);
        CHECK(table.find("data-backend=\"b0\" data-state=\"up\"") != std::string::npos);
        CHECK(table.find(std::to_string(a.port())) != std::string::npos);
        // Nothing is loaded from elsewhere.
        CHECK(html.find("src=\"http") == std::string::npos);
        CHECK(html.find("href=\"http") == std::string::npos);

        const Reply history = admin_request(admin, "GET", "/history");
        REQUIRE(history.status == 200);
        const json points = json::parse(history.body);
        CHECK(points["interval_seconds"] == 1);
        CHECK(points["services"][0]["name"] == "svc");
        CHECK(points["services"][0]["backends"][0]["name"] == "b0");
    }

    SECTION("with admin.token: the page, but its data needs the token") {
        Fulcrum fulcrum = start_with_admin({service}, admin, "", "token = \"s3cret-token\"\n");
        const Reply page = admin_request(admin, "GET", "/");
        REQUIRE(page.status == 200);
        const std::string& html = page.body;
        const auto noscript = html.find("<noscript>");
        REQUIRE(noscript != std::string::npos);
        const std::string table = html.substr(noscript, html.find("</noscript>") - noscript);
        CHECK(table.find("data-backend=") == std::string::npos);
        CHECK(table.find("admin.token") != std::string::npos);
        CHECK(admin_request(admin, "GET", "/history").status == 401);
        CHECK(admin_request(admin, "GET", "/history", "s3cret-token").status == 200);
    }
}
