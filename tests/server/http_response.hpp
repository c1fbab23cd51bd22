// Parsing and checking the gateway's plain HTTP answers in socket tests:
// every answer but a 101 must be a complete HTTP/1.1 response (a reason
// phrase, Content-Length matching the body, Connection: close), see
// server/impl/websocket_transport.ipp.
#pragma once

#include <doctest/doctest.h>

#include <cctype>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::test::sockets {

struct http_response {
    int status = 0;
    std::string reason;
    std::map<std::string, std::string> headers;  ///< names lower-cased
    std::string body;                            ///< Content-Length bytes (as many as arrived)
    std::size_t size = 0;                        ///< bytes of `in` this response took

    std::string header(const std::string& name) const {
        const auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

/// The response at the start of `in`; nothing when its head is incomplete.
inline std::optional<http_response> parse_http_response(std::string_view in) {
    const auto head_end = in.find("\r\n\r\n");
    if (head_end == std::string_view::npos) return std::nullopt;
    http_response r;
    const auto line_end = in.find("\r\n");
    const std::string_view line = in.substr(0, line_end);
    if (line.substr(0, 9) != "HTTP/1.1 " || line.size() < 12) return std::nullopt;
    r.status = std::stoi(std::string(line.substr(9, 3)));
    if (line.size() > 13) r.reason = std::string(line.substr(13));
    std::size_t at = line_end + 2;
    while (at < head_end) {
        const auto end = in.find("\r\n", at);
        const std::string_view h = in.substr(at, end - at);
        const auto colon = h.find(':');
        std::string name(h.substr(0, colon));
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string_view value = colon == std::string_view::npos ? std::string_view{} : h.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        r.headers.emplace(std::move(name), std::string(value));
        at = end + 2;
    }
    r.size = head_end + 4;
    const auto length = r.header("content-length");
    if (!length.empty()) {
        const std::size_t n = std::stoul(length);
        r.body = std::string(in.substr(r.size, n));
        r.size += r.body.size();
    }
    return r;
}

/// A complete refusal or answer: reason phrase, Content-Length that matches
/// the body, Connection: close.
inline void check_complete(const http_response& r, std::string_view all) {
    CAPTURE(all.substr(0, 400));
    CHECK(!r.reason.empty());
    REQUIRE_MESSAGE(!r.header("content-length").empty(), "no Content-Length");
    CHECK(std::stoul(r.header("content-length")) == r.body.size());
    CHECK(r.size <= all.size());
    CHECK(r.header("connection") == "close");
    if (r.status >= 400) CHECK(!r.body.empty());
}

}  // namespace gatehouse::test::sockets
