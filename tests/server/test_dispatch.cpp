// The dispatcher on the in-memory transport: the manifest (§7) and every
// step of PROTOCOL.md §8.2 with its response code, meta (§10), text frames
// (§8.6), size and rate limits (§18).
#include "harness.hpp"

#include <gatehouse/routing/salted_guid.hpp>

#include <cstring>
#include <random>

using namespace gatehouse::test;
using p::message_flags;
using p::response_code;

namespace {
using fixture = standard_fixture;
}  // namespace

TEST_CASE("manifest: own event frame, §7.2 shape, salted GUIDs, permission filtering") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a, "secret:read"));
    const auto all = decode_all(c->frames());
    REQUIRE(all.size() == 1);
    const auto& m = all[0].frame;
    CHECK(m.flags == message_flags::event);
    CHECK(m.channel == 0);
    CHECK(m.sequence == 0);
    CHECK(m.service.is_nil());
    const auto now_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    CHECK(p::message_id_unix_ms(m.message_id) <= now_ms);
    CHECK(p::message_id_unix_ms(m.message_id) + 10000 > now_ms);

    const auto j = all[0].json();
    CHECK(j.at("eventName") == "connect.capability-manifest");
    CHECK(j.at("sessionId") == session_a);
    CHECK(j.at("reason") == "session_connected");
    CHECK(j.at("version") == 0);
    CHECK(j.at("eventId").get<std::string>().size() == 36);
    CHECK(j.at("timestamp").get<std::string>().size() == 24);
    std::vector<std::string> paths;
    for (const auto& api : j.at("availableApis")) {
        const auto path = api.at("endpoint").get<std::string>();
        paths.push_back(path);
        CHECK(api.at("service") == "test");
        // The GUID is the §6 derivation for this session (Bannou-compatible order).
        CHECK(api.at("serviceId") == r::service_guid(session_a, "test:" + path, salt).to_string());
        if (path == "/echo")
            CHECK(api.at("description") == "Echoes the request body");
        else
            CHECK_FALSE(api.contains("description"));
    }
    // /secret needs secret:read (held); /admin needs role admin (not held).
    CHECK(paths == std::vector<std::string>{"/echo", "/binary", "/secret", "/fail", "/throw", "/drop", "/hold"});
}

TEST_CASE("manifest: documented GUID order is selectable") {
    auto o = default_options();
    o.guid_order = r::guid_input_order::documented;
    fixture f(o);
    auto c = f.h.connect(token("alice", session_a));
    CHECK(harness::guid_of(*c, "/echo") ==
          r::service_guid(session_a, "test:/echo", salt, r::guid_input_order::documented));
}

TEST_CASE("manifest: waits for the configured delay after the open") {
    auto o = default_options();
    o.manifest_delay = std::chrono::milliseconds(150);
    fixture f(o);
    auto c = f.h.upgrade_with("Bearer " + token("alice", session_a));
    REQUIRE(c->status() == 101);
    const auto opened = std::chrono::steady_clock::now();
    f.h.run_until([&] { return c->frame_count() > 0; });
    CHECK(std::chrono::steady_clock::now() - opened >= std::chrono::milliseconds(140));
}

TEST_CASE("call: success echoes channel, sequence and message id; flags 0x40") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto id = harness::guid_of(*c, "/echo");
    const auto reply = f.h.call(*c, harness::request(id, R"({"hello":"world"})", message_flags::none, 5, 0x01020304,
                                                     0x0123456789abcdefull),
                                0x0123456789abcdefull);
    CHECK(reply.frame.flags == message_flags::response);
    CHECK(reply.frame.channel == 5);
    CHECK(reply.frame.sequence == 0x01020304u);
    CHECK(reply.frame.code == response_code::ok);
    CHECK(reply.frame.payload.as_chars() == R"({"hello":"world"})");
}

TEST_CASE("call: a binary handler reply carries 0x41; a binary request with a JSON reply does not") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    auto reply = f.h.call(*c, harness::request(harness::guid_of(*c, "/binary"), "{}"));
    CHECK(reply.frame.flags == (message_flags::response | message_flags::binary));
    CHECK(reply.frame.payload.size() == 4);
    reply = f.h.call(*c, harness::request(harness::guid_of(*c, "/echo"), "xx", message_flags::binary));
    CHECK(reply.frame.flags == message_flags::response);
}

TEST_CASE("§8.2 step 1: unparsable frames are dropped without a reply") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto before = c->frame_count();
    c->send_binary(p::bytes_view(std::string("\x00\x01\x02", 3)));
    c->send_binary(p::bytes_view(std::string(30, '\0')));
    c->send_binary(p::bytes_view(std::string()));
    f.h.settle();
    CHECK(c->frame_count() == before);
    CHECK(f.h.gw.stats().frames_dropped == 3);
    // The connection still works.
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*c, "/echo"), "{}")).frame.code == response_code::ok);
}

TEST_CASE("§8.2 step 2: a response frame matches no pending request and is dropped") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto before = c->frame_count();
    std::string frame;
    p::append_frame(frame, p::response_header{message_flags::response, 0, 1, 42, response_code::ok}, p::bytes_view("{}"));
    c->send_binary(p::bytes_view(frame));
    f.h.settle();
    CHECK(c->frame_count() == before);
    CHECK_FALSE(c->closed());
}

TEST_CASE("§8.2 step 4: empty payload without Event or Meta -> 10") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto id = harness::guid_of(*c, "/echo");
    CHECK(f.h.call(*c, harness::request(id, "")).frame.code == response_code::request_error);
    // Error replies carry no payload and the 16-byte header only.
    CHECK(f.h.call(*c, harness::request(id, "")).bytes->size() == 16);
    // With the Event flag an empty payload is routed (and a successful event gets no reply).
    const auto before = harness::responses(*c).size();
    c->send_binary(p::bytes_view(harness::request(id, "", message_flags::event)));
    f.h.settle();
    CHECK(harness::responses(*c).size() == before);
}

TEST_CASE("§8.2 step 5/6: broadcast GUID needs the Client flag (10); peer routing is not enabled (40)") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    CHECK(f.h.call(*c, harness::request(p::guid::broadcast(), "{}")).frame.code == response_code::request_error);
    CHECK(f.h.call(*c, harness::request(p::guid::broadcast(), "{}", message_flags::client)).frame.code ==
          response_code::broadcast_not_allowed);
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*c, "/echo"), "{}", message_flags::client)).frame.code ==
          response_code::broadcast_not_allowed);
}

TEST_CASE("§8.2 step 6: a GUID not issued to this session -> 30") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    auto other = f.h.connect(token("bob", session_b));
    // A GUID of another session, the nil GUID, and a GUID for an endpoint
    // this session may not use (role admin) are all unknown here.
    CHECK(f.h.call(*c, harness::request(harness::guid_of(*other, "/echo"), "{}")).frame.code ==
          response_code::service_not_found);
    CHECK(f.h.call(*c, harness::request(p::guid::nil(), "{}")).frame.code == response_code::service_not_found);
    CHECK(f.h.call(*c, harness::request(r::service_guid(session_a, "test:/admin", salt), "{}")).frame.code ==
          response_code::service_not_found);
}

TEST_CASE("§8.2 step 7: channel above the maximum -> 13") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto id = harness::guid_of(*c, "/echo");
    CHECK(f.h.call(*c, harness::request(id, "{}", message_flags::none, 1000)).frame.code == response_code::ok);
    CHECK(f.h.call(*c, harness::request(id, "{}", message_flags::none, 1001)).frame.code ==
          response_code::invalid_request_channel);
    CHECK(f.h.call(*c, harness::request(id, "{}", message_flags::none, 65535)).frame.code ==
          response_code::invalid_request_channel);
}

TEST_CASE("§8.2 step 8 / §10: meta requests answered from the registration, flags 0xC0") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    const auto id = harness::guid_of(*c, "/echo");
    const char* names[] = {"endpoint-info", "request-schema", "response-schema", "full-schema"};
    for (std::uint16_t type = 0; type < 4; ++type) {
        const auto reply = f.h.call(*c, harness::request(id, "", message_flags::meta, type));
        CHECK(reply.frame.flags == (message_flags::response | message_flags::meta));
        CHECK(reply.frame.code == response_code::ok);
        const auto j = reply.json();
        CHECK(j.at("metaType") == names[type]);
        CHECK(j.at("serviceName") == "test");
        CHECK(j.at("method") == "POST");
        CHECK(j.at("path") == "/echo");
        CHECK(j.at("schemaVersion") == "1.0.0");
        CHECK(j.contains("generatedAt"));
        if (type == 0) CHECK(j.at("data").at("description") == "Echoes the request body");
        if (type == 1) CHECK(j.at("data") == nlohmann::json{{"type", "object"}});
        if (type == 2) CHECK(j.at("data").at("title") == "echo");
        if (type == 3) {
            CHECK(j.at("data").at("request") == nlohmann::json{{"type", "object"}});
            CHECK(j.at("data").at("info").at("path") == "/echo");
        }
    }
    // Unknown meta types mean endpoint info (§10); unknown GUIDs still get 30.
    CHECK(f.h.call(*c, harness::request(id, "", message_flags::meta, 9)).json().at("metaType") == "endpoint-info");
    CHECK(f.h.call(*c, harness::request(p::guid::nil(), "", message_flags::meta)).frame.code ==
          response_code::service_not_found);
}

TEST_CASE("§8.2 step 9: token bucket rate limit -> 12; meta requests are not counted") {
    auto o = default_options();
    o.message_burst = 3;
    o.messages_per_minute = 1;  // effectively no refill during the test
    fixture f(o);
    auto c = f.h.connect(token("alice", session_a));
    const auto id = harness::guid_of(*c, "/echo");
    for (int i = 0; i < 5; ++i)
        CHECK(f.h.call(*c, harness::request(id, "", message_flags::meta)).frame.code == response_code::ok);
    for (int i = 0; i < 3; ++i) CHECK(f.h.call(*c, harness::request(id, "{}")).frame.code == response_code::ok);
    CHECK(f.h.call(*c, harness::request(id, "{}")).frame.code == response_code::too_many_requests);
    CHECK(f.h.call(*c, harness::request(id, "{}")).frame.code == response_code::too_many_requests);
    // Another connection has its own bucket.
    auto other = f.h.connect(token("bob", session_b));
    CHECK(f.h.call(*other, harness::request(harness::guid_of(*other, "/echo"), "{}")).frame.code == response_code::ok);
}

TEST_CASE("size limits: payload above max_payload_size -> 11 and the connection continues; above max_message_size -> 1009") {
    auto o = default_options();
    o.max_message_size = 1024;
    o.max_payload_size = 100;
    fixture f(o);
    auto c = f.h.connect(token("alice", session_a));
    const auto id = harness::guid_of(*c, "/echo");
    CHECK(f.h.call(*c, harness::request(id, std::string(100, 'x'))).frame.code == response_code::ok);
    CHECK(f.h.call(*c, harness::request(id, std::string(101, 'x'))).frame.code == response_code::request_too_large);
    CHECK(f.h.call(*c, harness::request(id, "{}")).frame.code == response_code::ok);
    c->send_binary(p::bytes_view(harness::request(id, std::string(1024, 'x'))));
    f.h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 1009);
}

TEST_CASE("§8.6: text frames -> 14 on channel 0, server sequence from 1, fresh message ids") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    c->send_text("AUTH something");
    c->send_text("{}");
    f.h.run_until([&] { return harness::responses(*c).size() == 2; });
    const auto replies = harness::responses(*c);
    REQUIRE(replies.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(replies[i].bytes->size() == 16);
        CHECK(replies[i].frame.flags == message_flags::response);
        CHECK(replies[i].frame.code == response_code::text_protocol_not_supported);
        CHECK(replies[i].frame.channel == 0);
        CHECK(replies[i].frame.sequence == i + 1);
    }
    CHECK(replies[0].frame.message_id != replies[1].frame.message_id);
    CHECK_FALSE(c->closed());
}

TEST_CASE("Event-flagged requests: no reply on success nor on handler failure; gateway errors are still replied") {
    fixture f;
    auto c = f.h.connect(token("alice", session_a));
    c->send_binary(p::bytes_view(harness::request(harness::guid_of(*c, "/echo"), "{}", message_flags::event)));
    c->send_binary(p::bytes_view(harness::request(harness::guid_of(*c, "/fail"), "{}", message_flags::event)));
    f.h.settle();
    CHECK(harness::responses(*c).empty());
    const auto reply = f.h.call(*c, harness::request(p::guid::nil(), "{}", message_flags::event));
    CHECK(reply.frame.code == response_code::service_not_found);
}

TEST_CASE("nothing is routed before the session is attached") {
    fixture f;
    // The async validator answers 20 ms after the upgrade; a request sent
    // at once (with a GUID the session will get) is answered 30.
    auto c = f.h.upgrade_with("Bearer " + token("alice", session_a, "", "", "async"));
    REQUIRE(c->status() == 101);
    const auto id = r::service_guid(session_a, "test:/echo", salt);
    const auto reply = f.h.call(*c, harness::request(id, "{}"));
    CHECK(reply.frame.code == response_code::service_not_found);
    f.h.run_until([&] { return harness::manifest_of(*c).has_value(); });
    CHECK(f.h.call(*c, harness::request(id, "{}")).frame.code == response_code::ok);
}

TEST_CASE("bad input: random frames never break the connection or other sessions") {
    auto o = default_options();
    o.message_burst = 100000;
    o.messages_per_minute = 6000000;
    o.account_message_burst = o.message_burst;
    o.account_messages_per_minute = o.messages_per_minute;
    o.max_payload_size = 512;
    o.max_message_size = 1024;
    fixture f(o);
    auto victim = f.h.connect(token("alice", session_a));
    auto bystander = f.h.connect(token("bob", session_b));
    const auto echo = harness::guid_of(*victim, "/echo");
    std::mt19937 random(12345);
    for (int i = 0; i < 3000; ++i) {
        std::string frame(random() % 200, '\0');
        for (auto& ch : frame) ch = static_cast<char>(random());
        // Every third frame aims at a real endpoint, so handlers see garbage too.
        if (frame.size() >= 31 && i % 3 == 0) {
            frame[0] = static_cast<char>(frame[0] & ~0x40);
            std::memcpy(&frame[7], echo.bytes.data(), 16);
        }
        if (i % 50 == 0)
            victim->send_text(frame);
        else
            victim->send_binary(p::bytes_view(frame));
    }
    f.h.settle(std::chrono::milliseconds(100));
    CHECK_FALSE(victim->closed());
    CHECK(f.h.call(*victim, harness::request(echo, "{}", message_flags::none, 0, 1, 99), 99).frame.code ==
          response_code::ok);
    CHECK(f.h.call(*bystander, harness::request(harness::guid_of(*bystander, "/echo"), "{}")).frame.code ==
          response_code::ok);
    for (const auto& m : harness::responses(*victim)) CHECK(m.bytes->size() >= 16);
}
