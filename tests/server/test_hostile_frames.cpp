// Hostile peers after the upgrade, over real sockets (websocketpp
// transport): WebSocket framing violations each get their RFC 6455 close
// code and the socket is dropped; random payloads in valid frames get the
// protocol's response codes (or are dropped when no reply is possible) and
// the connection carries on; a session calling meanwhile never misses a
// reply, and the gateway's connection count returns to where it was.
#include "socket_harness.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace gatehouse::test;
using namespace gatehouse::test::sockets;

namespace {

constexpr std::size_t max_message = 4096;

s::gateway_options frame_options(std::size_t io_threads) {
    auto o = socket_options(io_threads);
    o.max_message_size = max_message;
    o.max_payload_size = 1024;
    return o;
}

struct violation {
    const char* name;
    std::string bytes;
    std::uint16_t close_code;
};

std::vector<violation> violations() {
    const std::string small(10, 'x');
    const std::string invalid_utf8("\xc3\x28\xa0\xa1\xff", 5);
    std::vector<violation> v = {
        {"unmasked client frame", client_frame(small, {0x82, false}), 1002},
        {"RSV1 without an extension", client_frame(small, {0xc2}), 1002},
        {"RSV2", client_frame(small, {0xa2}), 1002},
        {"RSV3", client_frame(small, {0x92}), 1002},
        {"continuation without a message", client_frame(small, {0x80}), 1002},
        {"data frame inside a fragmented message", client_frame(small, {0x02}) + client_frame(small, {0x82}), 1002},
        {"fragmented ping", client_frame(small, {0x09}), 1002},
        {"ping with 126 bytes", client_frame(std::string(126, 'p'), {0x89}), 1002},
        {"close with a one-byte payload", client_frame(std::string(1, '\x03'), {0x88}), 1002},
        {"close code 999", client_frame(close_payload(999), {0x88}), 1002},
        {"close code 1005 (never sent)", client_frame(close_payload(1005), {0x88}), 1002},
        {"close code 1004 (reserved)", client_frame(close_payload(1004), {0x88}), 1002},
        {"close code 5000", client_frame(close_payload(5000), {0x88}), 1002},
        {"close reason not UTF-8", client_frame(close_payload(1000, invalid_utf8), {0x88}), 1002},
        {"text message not UTF-8", client_frame(invalid_utf8, {0x81}), 1007},
        {"text message not UTF-8 across fragments",
         client_frame(std::string("ab\xc3", 3), {0x01}) + client_frame(std::string("\x28", 1), {0x80}), 1007},
        // Lengths: checked from the header, before anything is buffered.
        {"64-bit length of 2^40", client_frame("", {0x82, true, 127, std::uint64_t{1} << 40}), 1009},
        {"64-bit length with the top bit set", client_frame("", {0x82, true, 127, ~std::uint64_t{0}}), 1009},
        {"one frame one byte past max_message_size", client_frame("", {0x82, true, 0, max_message + 1}), 1009},
        {"fragments adding up past max_message_size",
         client_frame(std::string(3000, 'f'), {0x02}) + client_frame(std::string(3000, 'g'), {0x80}), 1009},
        // websocketpp maps a non-minimal length to 1011 (see server/impl/websocket_transport.ipp).
        {"16-bit length for 10 bytes", client_frame(small, {0x82, true, 126}), 1011},
        {"64-bit length for 200 bytes", client_frame(std::string(200, 'z'), {0x82, true, 127}), 1011},
    };
    for (std::uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf})
        v.push_back({"reserved opcode", client_frame(small, {static_cast<std::uint8_t>(0x80 | op)}), 1002});
    return v;
}

void framing_violations(std::size_t io_threads) {
    live_gateway g(frame_options(io_threads));
    bystander calling(g.port, session_a);
    int n = 0;
    for (const auto& v : violations()) {
        CAPTURE(v.name);
        const std::string session = "00000000-0000-4000-8000-" + std::string(12 - std::to_string(n).size(), '0') +
                                    std::to_string(n);
        ++n;
        ws_client c(g.port);
        c.connect(token("mallory-" + std::to_string(n), session));
        REQUIRE(c.send_raw(v.bytes));
        const auto code = c.read_close(ms(3000));
        REQUIRE(code.has_value());
        CHECK(*code == v.close_code);
        // The server drops the socket after its close frame (no handshake
        // with a peer that broke the protocol).
        CHECK(c.socket.wait_closed(ms(3000)).has_value());
    }
    CHECK(g.wait_for_connections(1));
    CHECK(g.gw->stats().sessions == 1);
    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
}

}  // namespace

TEST_CASE("hostile frames: each framing violation gets its close code and the socket is dropped") {
    SUBCASE("one I/O thread") { framing_violations(1); }
    SUBCASE("two I/O threads") { framing_violations(2); }
}

TEST_CASE("hostile frames: random payloads in valid frames get a response code or are dropped; the session goes on") {
    live_gateway g(frame_options(2));
    bystander calling(g.port, session_a);
    ws_client c(g.port);
    c.connect(token("fuzzer", session_b));

    const auto seed = std::random_device{}();
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const auto before = g.gw->stats();
    std::uint64_t expect_dropped = 0;    // no readable header
    std::uint64_t expect_unmatched = 0;  // responses to nothing the server asked
    std::vector<std::uint64_t> expect_replies;  // message ids, in order
    for (int i = 0; i < 400; ++i) {
        // Mostly short frames around the header sizes, some up to the
        // payload limit and beyond (answered 11).
        const std::size_t size = i % 10 == 0 ? rng() % 1400 : rng() % 64;
        std::string bytes(size, '\0');
        for (auto& b : bytes) b = static_cast<char>(rng());
        if (i % 3 == 0 && size >= p::request_header_size) bytes[0] = static_cast<char>(bytes[0] & ~0x40);
        p::frame_view view;
        if (p::decode_frame(p::bytes_view(bytes), view))
            ++expect_dropped;
        else if (view.is_response())
            ++expect_unmatched;
        else
            expect_replies.push_back(view.message_id);
        REQUIRE(c.send(lg::ws_opcode::binary, bytes));
    }
    // Text frames are answered 14 (§8.6), whatever they hold.
    for (const char* text : {"hello", "{\"json\":true}", "\xc3\xa9t\xc3\xa9"}) REQUIRE(c.send(lg::ws_opcode::text, text));

    std::vector<std::uint64_t> replies;
    std::size_t text_refusals = 0;
    const auto deadline = clock_type::now() + ms(10000);
    while (replies.size() + text_refusals < expect_replies.size() + 3 && clock_type::now() < deadline) {
        auto f = c.read_frame(ms(3000));
        REQUIRE(f.has_value());
        REQUIRE(f->opcode == lg::ws_opcode::binary);
        p::frame_view view;
        REQUIRE_FALSE(p::decode_frame(p::bytes_view(f->payload), view));
        REQUIRE(view.is_response());
        CHECK(view.code != p::response_code::ok);
        if (view.code == p::response_code::text_protocol_not_supported)
            ++text_refusals;
        else
            replies.push_back(view.message_id);
    }
    CHECK(replies == expect_replies);
    CHECK(text_refusals == 3);
    const auto after = g.gw->stats();
    CHECK(after.frames_dropped - before.frames_dropped == expect_dropped);
    CHECK(after.responses_unmatched - before.responses_unmatched == expect_unmatched);

    // The connection is still in service.
    const auto reply = c.call("/echo", "{\"after\":\"noise\"}", 424242);
    REQUIRE(reply.has_value());
    CHECK(reply->code == p::response_code::ok);
    CHECK(reply->payload.as_chars() == "{\"after\":\"noise\"}");
    CHECK(c.close_cleanly());
    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
    CHECK(g.wait_for_connections(1));
}

TEST_CASE("hostile frames: random bytes instead of frames end in a close code or a drop, never a crash") {
    live_gateway g(frame_options(2));
    bystander calling(g.port, session_a);
    const auto seed = std::random_device{}();
    CAPTURE(seed);
    std::mt19937 rng(seed);
    for (int i = 0; i < 40; ++i) {
        ws_client c(g.port);
        c.connect(token("noise-" + std::to_string(i), "11111111-0000-4000-8000-0000000000" + std::to_string(10 + i)));
        std::string noise(64 + rng() % 512, '\0');
        for (auto& b : noise) b = static_cast<char>(rng());
        // Not a well-formed close frame by chance: the server would echo its code.
        if ((noise[0] & 0x0f) == 0x8) noise[0] = static_cast<char>(noise[0] ^ 0x01);
        REQUIRE(c.send_raw(noise));
        // Either a protocol error closes the connection, or the noise parsed
        // as the start of a long frame and the server waits for the rest.
        const auto code = c.read_close(ms(300));
        if (code) {
            CAPTURE(*code);
            CHECK((*code == 1002 || *code == 1007 || *code == 1009 || *code == 1011));
            CHECK(c.socket.wait_closed(ms(3000)).has_value());
        }
    }
    CHECK(g.wait_for_connections(1, ms(5000)));
    CHECK(calling.stop() >= 3);
    CHECK(calling.failures() == 0);
}
