#include "fulcrum/admin/status_page.hpp"

#include <string_view>

namespace fulcrum {

extern const std::string_view status_page_html;  // src/admin/status_page.html, embedded

namespace {

std::string escape_html(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string text_of(const nlohmann::ordered_json& value) {
    return escape_html(value.is_string() ? value.get<std::string>() : value.dump());
}

// The backends of every service as plain tables: the page without JavaScript.
std::string static_tables(const nlohmann::ordered_json& status) {
    std::string out;
    for (const nlohmann::ordered_json& service : status["services"]) {
        out += "<section class=\"service\"><h2>" + text_of(service["name"]) + "</h2>";
        out += "<div class=\"facts\"><span>listen <b>" + text_of(service["listen"]) +
               "</b></span><span>strategy <b>" + text_of(service["strategy"]) +
               "</b></span><span>queued <b>" + text_of(service["queue_length"]) +
               "</b></span></div>";
        out +=
            "<div class=\"scroll\"><table><thead><tr><th>backend</th><th>source</th>"
            "<th>state</th><th>active</th><th>last check</th><th>weight / effective</th>"
            "</tr></thead><tbody>";
        for (const nlohmann::ordered_json& b : service["backends"]) {
            const std::string state = text_of(b["state"]);
            std::string check = "no check yet";
            if (b["last_check"].is_object()) {
                check =
                    text_of(b["last_check"]["result"]) + ": " + text_of(b["last_check"]["detail"]);
            }
            out += "<tr data-backend=\"" + text_of(b["name"]) + "\" data-state=\"" + state +
                   "\"><td>" + text_of(b["name"]) + "<div class=\"check\">" +
                   text_of(b["address"]) + "</div></td><td>" + text_of(b["source"]) +
                   "</td><td><span class=\"state " + state + "\">" + state + "</span></td>" +
                   "<td class=\"num\">" + text_of(b["active_connections"]) + "</td>" +
                   "<td class=\"check\">" + check + "</td><td class=\"num\">" +
                   text_of(b["weight"]) + " / " + text_of(b["effective_weight"]) + "</td></tr>";
        }
        out += "</tbody></table></div></section>";
    }
    return out;
}

}  // namespace

std::string render_status_page(const nlohmann::ordered_json* status) {
    constexpr std::string_view marker = "<!--FULCRUM_TABLE-->";
    const std::string table =
        status != nullptr ? static_tables(*status)
                          : "<p>This fulcrum has admin.token set: the page needs JavaScript to "
                            "send it.</p>";
    std::string page(status_page_html);
    const std::size_t at = page.find(marker);
    if (at != std::string::npos) page.replace(at, marker.size(), table);
    return page;
}

}  // namespace fulcrum
