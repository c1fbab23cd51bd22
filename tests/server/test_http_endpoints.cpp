// GET /metrics and GET /health on the gateway's listening port (issue 5
// item 8), over real sockets with a plain HTTP/1.1 client: content types,
// values after real upgrades and calls, the loopback/allow-list rule, other
// methods, disabled paths, and 503 from /health while stop() drains. Every
// answer and refusal is a complete HTTP/1.1 response (issue 13 item 5):
// reason phrase, Content-Length, Connection: close; the WebSocket path is
// matched exactly; of pipelined requests only the first is answered.
#include "http_response.hpp"
#include "socket_harness.hpp"

#include <gatehouse/server/metrics.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace gatehouse::test;
using namespace gatehouse::test::sockets;

namespace {

struct http_answer {
    int status = 0;
    std::string head;  ///< status line and headers, lower-cased
    std::string body;
};

/// Sends one request on `socket` and reads the answer until the server
/// closes the connection (websocketpp closes after a plain HTTP answer).
http_answer exchange(client_socket& socket, std::string_view method, std::string_view path) {
    std::string request(method);
    request.append(" ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    REQUIRE(socket.write(request));
    REQUIRE_MESSAGE(socket.wait_closed(ms(5000)).has_value(), "the server did not finish its answer");
    http_answer a;
    const auto end = socket.buffer.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    a.head = socket.buffer.substr(0, end + 2);
    for (auto& ch : a.head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    a.body = socket.buffer.substr(end + 4);
    a.status = http_status(socket.buffer);
    return a;
}

http_answer http(std::uint16_t port, std::string_view method, std::string_view path) {
    client_socket socket(port);
    return exchange(socket, method, path);
}

/// The value of one sample line `name{labels} value` in an exposition.
std::string sample(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    REQUIRE_MESSAGE(at != std::string::npos, "no series " << series);
    const auto start = at + series.size() + 2;
    return text.substr(start, text.find('\n', start) - start);
}

s::gateway_options with_metrics(std::shared_ptr<s::prometheus_metrics> sink) {
    auto o = socket_options();
    o.metrics = std::move(sink);
    return o;
}

}  // namespace

TEST_CASE("http endpoints: /metrics serves the exposition with real traffic counted") {
    auto sink = std::make_shared<s::prometheus_metrics>();
    live_gateway g(with_metrics(sink));

    ws_client alice(g.port);
    alice.connect(token("alice", session_a));
    const auto reply = alice.call("/echo", R"({"x":1})", 42);
    REQUIRE(reply.has_value());
    CHECK(reply->code == p::response_code::ok);
    ws_client refused(g.port);
    CHECK(refused.upgrade("Bearer bad|x|y") == 401);
    CHECK(http(g.port, "GET", "/connect").status == 426);   // not an upgrade: bad_request
    CHECK(http(g.port, "GET", "/favicon.ico").status == 404);  // not_found

    const auto a = http(g.port, "GET", "/metrics");
    REQUIRE(a.status == 200);
    CHECK(a.head.find("\r\ncontent-type: text/plain; version=0.0.4") != std::string::npos);
    CHECK(a.head.find("\r\ncache-control: no-store") != std::string::npos);
    CHECK(a.body.rfind("# HELP gatehouse_connections ", 0) == 0);
    CHECK(sample(a.body, "gatehouse_connections") == "1");
    CHECK(sample(a.body, "gatehouse_upgrades_total{result=\"accepted\",status=\"101\"}") == "1");
    CHECK(sample(a.body, "gatehouse_upgrades_total{result=\"unauthorized\",status=\"401\"}") == "1");
    CHECK(sample(a.body, "gatehouse_upgrades_total{result=\"bad_request\",status=\"400\"}") == "1");
    CHECK(sample(a.body, "gatehouse_upgrades_total{result=\"not_found\",status=\"404\"}") == "1");
    CHECK(sample(a.body, "gatehouse_messages_received_total") == "1");
    CHECK(sample(a.body, "gatehouse_messages_sent_total") == "2");  // manifest + reply
    CHECK(sample(a.body, "gatehouse_responses_total{code=\"0\",name=\"OK\"}") == "1");
    CHECK(sample(a.body, "gatehouse_handler_latency_seconds_count") == "1");
    CHECK(sample(a.body, "gatehouse_sessions") == "1");
    CHECK(sample(a.body, "gatehouse_parked_sessions") == "0");
    CHECK(sample(a.body, "gatehouse_client_calls_pending") == "0");
    CHECK(a.body.find("alice") == std::string::npos);  // counts only, no identities or tokens

    // Scrapes and health checks are not upgrades.
    CHECK(http(g.port, "GET", "/health?probe=1").status == 200);
    const auto again = http(g.port, "GET", "/metrics");
    CHECK(sample(again.body, "gatehouse_upgrades_total{result=\"not_found\",status=\"404\"}") == "1");
    CHECK(sample(again.body, "gatehouse_upgrades_total{result=\"bad_request\",status=\"400\"}") == "1");

    const auto post = http(g.port, "POST", "/metrics");
    CHECK(post.status == 405);
    CHECK(post.head.find("\r\nallow: get") != std::string::npos);
    CHECK(alice.close_cleanly());
}

TEST_CASE("http endpoints: /health answers 200 while running and 503 while stopping") {
    auto o = with_metrics(std::make_shared<s::prometheus_metrics>());
    o.handshake_timeout = ms(2000);  // bounds the drain the test observes
    live_gateway g(o);

    const auto running = http(g.port, "GET", "/health");
    CHECK(running.status == 200);
    CHECK(running.head.find("\r\ncontent-type: application/json") != std::string::npos);
    CHECK(running.body == R"({"status":"running"})");

    // A session that never answers the server's close frame keeps stop()
    // draining; a socket accepted before stop() asks for /health meanwhile.
    ws_client silent(g.port);
    silent.connect(token("alice", session_a));
    client_socket probe(g.port);
    std::this_thread::sleep_for(ms(100));  // accepted by the gateway
    g.gw->stop();
    const auto stopping = exchange(probe, "GET", "/health");
    CHECK(stopping.status == 503);
    CHECK(stopping.body == R"({"status":"stopping"})");
    CHECK(silent.read_close(ms(3000)) == std::optional<std::uint16_t>(1001));
}

TEST_CASE("http endpoints: allow-list, disabled paths, no sink") {
    SUBCASE("an allow-list without loopback hides /metrics from a loopback peer") {
        auto o = with_metrics(std::make_shared<s::prometheus_metrics>());
        o.metrics_allowed_addresses = {"10.200.0.9"};
        live_gateway g(o);
        const auto a = http(g.port, "GET", "/metrics");
        CHECK(a.status == 404);
        CHECK(a.body == "Not found");
        CHECK(http(g.port, "GET", "/health").status == 200);  // health is for everyone
    }
    SUBCASE("listing loopback allows it") {
        auto o = with_metrics(std::make_shared<s::prometheus_metrics>());
        o.metrics_allowed_addresses = {"10.200.0.9", "127.0.0.1"};
        live_gateway g(o);
        CHECK(http(g.port, "GET", "/metrics").status == 200);
    }
    SUBCASE("configured paths; empty disables") {
        auto o = with_metrics(std::make_shared<s::prometheus_metrics>());
        o.metrics_path = "/internal/prometheus";
        o.health_path.clear();
        live_gateway g(o);
        CHECK(http(g.port, "GET", "/metrics").status == 404);
        CHECK(http(g.port, "GET", "/health").status == 404);
        const auto a = http(g.port, "GET", "/internal/prometheus");
        CHECK(a.status == 200);
        CHECK(sample(a.body, "gatehouse_connections") == "0");
    }
    SUBCASE("no sink: /metrics is 404, /health still works") {
        live_gateway g(socket_options());
        CHECK(http(g.port, "GET", "/metrics").status == 404);
        CHECK(http(g.port, "GET", "/health").status == 200);
    }
}

namespace {

/// Writes `bytes` on a new connection and reads until the server closes it.
std::string raw_exchange(std::uint16_t port, const std::string& bytes) {
    client_socket socket(port);
    (void)socket.write(bytes);  // the server may answer and close before reading it all
    REQUIRE_MESSAGE(socket.wait_closed(ms(5000)).has_value(), "the server did not close the connection");
    return socket.buffer;
}

/// The one complete response `bytes` gets; nothing follows it.
http_response only_answer(std::uint16_t port, const std::string& bytes) {
    const std::string all = raw_exchange(port, bytes);
    const auto r = parse_http_response(all);
    REQUIRE_MESSAGE(r.has_value(), "no HTTP response: " << all);
    check_complete(*r, all);
    CHECK(r->size == all.size());
    return *r;
}

}  // namespace

TEST_CASE("http endpoints: every answer is a complete HTTP/1.1 response") {
    live_gateway g(with_metrics(std::make_shared<s::prometheus_metrics>()));
    const std::string host = "Host: 127.0.0.1\r\n";

    SUBCASE("431: request head beyond websocketpp's limit") {
        const auto r = only_answer(g.port, "GET /health HTTP/1.1\r\n" + host + "X-Big: " + std::string(20000, 'a') +
                                               "\r\n\r\n");
        CHECK(r.status == 431);
        CHECK(r.reason == "Request Header Fields Too Large");
    }
    SUBCASE("400: malformed request") {
        const auto r = only_answer(g.port, "GET /health HTTP/1.1\r\n" + host + "nonsense\r\n\r\n");
        CHECK(r.status == 400);
        CHECK(r.reason == "Bad Request");
        const auto no_version = only_answer(g.port, "GET /health\r\n" + host + "\r\n");
        CHECK(no_version.status == 400);
    }
    SUBCASE("200, 404, 405") {
        const auto health = only_answer(g.port, "GET /health HTTP/1.1\r\n" + host + "\r\n");
        CHECK(health.status == 200);
        CHECK(health.reason == "OK");
        CHECK(health.body == R"({"status":"running"})");
        const auto metrics = only_answer(g.port, "GET /metrics HTTP/1.1\r\n" + host + "\r\n");
        CHECK(metrics.status == 200);
        CHECK(only_answer(g.port, "GET /favicon.ico HTTP/1.1\r\n" + host + "\r\n").status == 404);
        const auto post = only_answer(g.port, "POST /health HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n");
        CHECK(post.status == 405);
        CHECK(post.reason == "Method Not Allowed");
    }
    SUBCASE("refused upgrades (401, 426 for another version)") {
        const auto unauthorized = only_answer(g.port, upgrade_request("Bearer bad|x|y"));
        CHECK(unauthorized.status == 401);
        CHECK(unauthorized.reason == "Unauthorized");
        std::string v8 = upgrade_request("Bearer " + token("alice", session_a));
        v8.replace(v8.find("Version: 13"), 11, "Version: 8");
        CHECK(only_answer(g.port, v8).status == 426);
    }
    SUBCASE("pipelined requests: the first is answered with Connection: close, the connection closes") {
        const std::string one = "GET /health HTTP/1.1\r\n" + host + "\r\n";
        const auto r = only_answer(g.port, one + one);  // one response, nothing after it
        CHECK(r.status == 200);
        CHECK(r.body == R"({"status":"running"})");
        const auto mixed = only_answer(g.port, "GET /nowhere HTTP/1.1\r\n" + host + "\r\n" + one);
        CHECK(mixed.status == 404);
    }
    SUBCASE("the WebSocket path is matched exactly, query aside, with or without an Upgrade") {
        const std::string bearer = "Bearer " + token("alice", session_a);
        for (const char* path : {"/connectfoo", "/connect/", "/connect.json", "/connec", "/Connect"}) {
            CAPTURE(path);
            const auto plain = only_answer(g.port, std::string("GET ") + path + " HTTP/1.1\r\n" + host + "\r\n");
            CHECK(plain.status == 404);
            CHECK(plain.reason == "Not Found");
            const auto upgrade = only_answer(g.port, upgrade_request(bearer, {}, path));
            CHECK(upgrade.status == 404);
        }
        for (const char* path : {"/connect", "/connect?token=abc"}) {
            CAPTURE(path);
            const auto plain = only_answer(g.port, std::string("GET ") + path + " HTTP/1.1\r\n" + host + "\r\n");
            CHECK(plain.status == 426);
            CHECK(plain.reason == "Upgrade Required");
            CHECK(plain.body == "This endpoint only accepts WebSocket connections");
        }
        ws_client ok(g.port);
        ok.connect(token("alice", session_a));  // and the exact path still upgrades
        CHECK(ok.head.find("Content-Length") == std::string::npos);  // none on a 101
        CHECK(ok.close_cleanly());
    }
}
