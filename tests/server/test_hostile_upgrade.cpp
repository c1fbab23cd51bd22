// Hostile peers before the upgrade, over real sockets (websocketpp
// transport): silent and slow clients, stalled TLS handshakes, oversized and
// malformed request heads, and a flood of sockets that never upgrade. Each
// gets a clear HTTP status or a close within its bound, and a session that
// keeps calling meanwhile (the bystander) never misses a reply.
#include "http_response.hpp"
#include "socket_harness.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace gatehouse::test;
using namespace gatehouse::test::sockets;

namespace {

constexpr const char* session_c = "8c9619ff-8b86-4d11-b42d-00c04fc964cc";
constexpr auto handshake_timeout = ms(600);
/// Scheduling slack on a loaded 2-core machine (and under sanitizers).
constexpr auto close_margin = ms(1500);

s::gateway_options upgrade_options(std::size_t io_threads) {
    auto o = socket_options(io_threads);
    o.handshake_timeout = handshake_timeout;
    return o;
}

/// The server must close `c` after about handshake_timeout (measured from
/// `connected`), without having sent anything.
void expect_dropped_at_deadline(client_socket& c, clock_type::time_point connected, const char* what) {
    INFO(what);
    const auto closed = c.wait_closed(handshake_timeout + close_margin);
    REQUIRE_MESSAGE(closed.has_value(), "still open after handshake_timeout + margin");
    const auto elapsed = std::chrono::duration_cast<ms>(clock_type::now() - connected);
    CHECK(elapsed >= handshake_timeout - ms(100));
    CHECK(elapsed <= handshake_timeout + close_margin);
    CHECK(c.buffer.empty());
}

void expect_healthy(live_gateway& g, const std::string& session) {
    ws_client fresh(g.port);
    fresh.connect(token("fresh-" + session, session));
    const auto reply = fresh.call("/echo", "{\"still\":\"serving\"}", 77);
    REQUIRE(reply.has_value());
    CHECK(reply->code == p::response_code::ok);
    CHECK(reply->payload.as_chars() == "{\"still\":\"serving\"}");
    CHECK(fresh.close_cleanly());
}

void slow_peers_are_dropped(std::size_t io_threads) {
    live_gateway g(upgrade_options(io_threads));
    bystander calling(g.port, session_a);

    // Connects and sends nothing.
    client_socket silent(g.port);
    const auto silent_at = clock_type::now();
    // Sends part of a request head, then nothing.
    client_socket partial(g.port);
    const auto partial_at = clock_type::now();
    REQUIRE(partial.write("GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"));
    // Keeps sending a valid request, one byte every 40 ms: the deadline is
    // for the whole upgrade, not for silence between bytes.
    client_socket trickle(g.port);
    const auto trickle_at = clock_type::now();
    const std::string request = upgrade_request("Bearer " + token("trickle", session_b));
    std::size_t sent = 0;
    while (!trickle.closed() && sent < request.size()) {
        if (!trickle.write(std::string_view(request).substr(sent, 1))) break;
        ++sent;
        if (trickle.read_some(ms(40)) == client_socket::read_status::data) break;
        REQUIRE(clock_type::now() - trickle_at < handshake_timeout + close_margin);
    }
    CHECK(sent < request.size());

    // Pending upgrades are not sessions: only the bystander counts.
    CHECK(g.gw->stats().connections == 1);

    expect_dropped_at_deadline(trickle, trickle_at, "one byte at a time");
    expect_dropped_at_deadline(silent, silent_at, "silent");
    expect_dropped_at_deadline(partial, partial_at, "partial request head");

    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
    expect_healthy(g, session_c);
    CHECK(g.wait_for_connections(1));
}

}  // namespace

TEST_CASE("hostile upgrade: silent, partial and trickling peers are dropped after handshake_timeout") {
    SUBCASE("one I/O thread") { slow_peers_are_dropped(1); }
    SUBCASE("two I/O threads") { slow_peers_are_dropped(2); }
}

TEST_CASE("hostile upgrade: a stalled TLS handshake is dropped after handshake_timeout, not websocketpp's 5 s") {
    test_certificate cert;
    auto o = upgrade_options(2);
    o.tls_certificate_file = cert.certificate();
    o.tls_private_key_file = cert.private_key();
    live_gateway g(o);
    bystander calling(g.port, session_a, &cert.client);

    client_socket silent(g.port);  // TCP only, no ClientHello
    const auto silent_at = clock_type::now();
    client_socket partial(g.port);  // the first bytes of a TLS record, then nothing
    const auto partial_at = clock_type::now();
    REQUIRE(partial.write(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));

    expect_dropped_at_deadline(silent, silent_at, "no ClientHello");
    expect_dropped_at_deadline(partial, partial_at, "partial ClientHello");

    // A TLS client that completes its handshake and then stalls on the
    // upgrade request is bound by the same deadline.
    client_socket after_tls(g.port, &cert.client);
    const auto after_tls_at = clock_type::now();
    const auto closed = after_tls.wait_closed(handshake_timeout + close_margin);
    REQUIRE(closed.has_value());
    CHECK(clock_type::now() - after_tls_at <= handshake_timeout + close_margin);

    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
    ws_client fresh(g.port, &cert.client);
    fresh.connect(token("fresh", session_b));
    const auto reply = fresh.call("/echo", "{}", 5);
    REQUIRE(reply.has_value());
    CHECK(reply->code == p::response_code::ok);
    CHECK(g.wait_for_connections(2));
}

namespace {

struct head_case {
    const char* name;
    std::string bytes;
    int status;
};

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

std::vector<head_case> head_cases() {
    const std::string bearer = "Bearer " + token("mallory", "9d9619ff-8b86-4d11-b42d-00c04fc964dd");
    std::string many_headers;
    for (int i = 0; i < 3000; ++i) many_headers += "X-H-" + std::to_string(i) + ": v\r\n";
    std::string unterminated = "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 2000; ++i) unterminated += "X-Pad: aaaaaaaa\r\n";  // no blank line ever
    std::vector<head_case> cases = {
        {"one huge header (20 000 bytes)", upgrade_request(bearer, "X-Big: " + repeat('a', 20000) + "\r\n"), 431},
        {"3000 small headers", upgrade_request(bearer, many_headers), 431},
        {"header block without its blank line, past the limit", unterminated, 431},
        {"header line without CRLF, past the limit", "GET /connect HTTP/1.1\r\nX-Long: " + repeat('b', 30000), 431},
        {"huge request line", upgrade_request(bearer, {}, "/connect?pad=" + repeat('c', 20000)), 431},
        {"a body announced beyond the limit", upgrade_request(bearer, "Content-Length: 100000\r\n"), 413},
        {"binary garbage", std::string("\x01\x02\xff\xfe\x80garbage\r\n\r\n", 14), 400},
        {"request line without a version", "GET /connect\r\nHost: 127.0.0.1\r\n\r\n", 400},
        {"no Host header", "GET /connect HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 400},
        {"header line without a colon", "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nnonsense\r\n\r\n", 400},
        {"missing Sec-WebSocket-Key",
         "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"plain HTTP GET on the WebSocket path", "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426},
        {"plain HTTP GET elsewhere", "GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404},
        {"draft version hybi-08",
         "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: " +
             bearer + "\r\n\r\n",
         426},
        {"hixie-76 (no version header, three keys)",
         "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
         "Origin: http://127.0.0.1\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
         "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nAuthorization: " +
             bearer + "\r\n\r\n^n:ds[4U",
         426},
        {"unknown version 99",
         "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         400},
    };
    return cases;
}

}  // namespace

TEST_CASE("hostile upgrade: oversized or malformed request heads get a clear status, then the socket closes") {
    live_gateway g(upgrade_options(2));
    bystander calling(g.port, session_a);

    for (const auto& c : head_cases()) {
        CAPTURE(c.name);
        client_socket raw(g.port);
        // The server may stop reading and answer before everything is sent.
        (void)raw.write(c.bytes);
        REQUIRE(raw.wait_closed(ms(3000)).has_value());
        CHECK(http_status(raw.buffer) == c.status);
        // A complete HTTP/1.1 answer, even from websocketpp's own parser.
        const auto answer = parse_http_response(raw.buffer);
        REQUIRE(answer.has_value());
        check_complete(*answer, raw.buffer);
        CHECK(answer->size == raw.buffer.size());
        if (c.status == 426 && c.bytes.find("/connect") != std::string::npos &&
            c.bytes.find("Sec-WebSocket-Key") != std::string::npos)
            CHECK(raw.buffer.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
    }

    // Just under websocketpp's fixed limit (16 000 bytes of head): accepted.
    ws_client big(g.port);
    CHECK(big.upgrade("Bearer " + token("big", session_b), "X-Pad: " + repeat('d', 15000) + "\r\n") == 101);
    CHECK(big.close_cleanly());

    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
    expect_healthy(g, session_c);
    CHECK(g.wait_for_connections(1));
}

TEST_CASE("hostile upgrade: sockets still upgrading are capped at max_connections") {
    auto o = upgrade_options(1);
    o.max_connections = 3;
    o.handshake_timeout = ms(5000);
    live_gateway g(o);
    bystander calling(g.port, session_a);

    std::vector<std::unique_ptr<client_socket>> silent;
    for (int i = 0; i < 3; ++i) silent.push_back(std::make_unique<client_socket>(g.port));
    std::this_thread::sleep_for(ms(200));  // accepted by now
    // The fourth socket is closed at once, long before handshake_timeout.
    client_socket refused(g.port);
    const auto closed = refused.wait_closed(ms(2000));
    REQUIRE(closed.has_value());
    CHECK(refused.buffer.empty());

    // Once the silent ones go away, upgrades are served again; the open
    // session never noticed.
    silent.clear();
    const auto deadline = clock_type::now() + ms(5000);
    bool served = false;
    while (!served && clock_type::now() < deadline) {
        client_socket probe(g.port);
        (void)probe.write(upgrade_request("Bearer " + token("probe", session_c)));
        served = probe.read_until("\r\n\r\n", ms(1000)) && http_status(probe.buffer) == 101;
        if (!served) std::this_thread::sleep_for(ms(20));
    }
    REQUIRE(served);
    expect_healthy(g, session_b);
    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
}
