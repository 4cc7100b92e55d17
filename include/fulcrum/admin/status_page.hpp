#pragma once
// GET / on the admin endpoint: one self-contained HTML page (its styles and script
// inline, nothing loaded from elsewhere) that draws /status and /history, refreshed every
// 1.5 s, with drain and enable buttons. Without JavaScript it still shows the backends'
// table, rendered here on the server.

#include <nlohmann/json.hpp>
#include <string>

namespace fulcrum {

// The page. `status`: what GET /status answers, for the table shown without JavaScript;
// nullptr when admin.token is set (the page itself needs no token, the data does).
std::string render_status_page(const nlohmann::ordered_json* status);

}  // namespace fulcrum
