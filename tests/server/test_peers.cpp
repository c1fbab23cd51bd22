// Client-to-client routing (PROTOCOL.md §12.1, §12.2, §15 modes): peer GUIDs
// per connection announced in the manifest, Client-flagged (0x20) frames
// forwarded unchanged, acknowledgements, 31 for unknown peers, broadcast only
// when configured, 40 when disabled, and the usual limits. In-memory transport.
#include "harness.hpp"

#include <set>

using namespace gatehouse::test;
using p::message_flags;
using p::response_code;

namespace {

s::gateway_options relayed(bool broadcast = false) {
    auto o = default_options();
    o.peer_routing = true;
    o.peer_broadcast = broadcast;
    return o;
}

p::guid peer_of(const s::memory_client& c) {
    const auto m = harness::manifest_of(c);
    REQUIRE(m.has_value());
    REQUIRE(m->contains("peerGuid"));
    return p::guid_from_string(m->at("peerGuid").get<std::string>());
}

/// Frames with the Client flag that reached `c` (forwarded peer messages).
std::vector<message> peer_frames(const s::memory_client& c) {
    std::vector<message> out;
    for (auto& m : decode_all(c.frames()))
        if (!m.frame.is_response() && m.frame.has(message_flags::client)) out.push_back(std::move(m));
    return out;
}

}  // namespace

TEST_CASE("peers: disabled by default (External mode): no peerGuid, Client-flagged frames -> 40") {
    harness h;
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    CHECK_FALSE(harness::manifest_of(*a)->contains("peerGuid"));
    const auto guid = p::guid_from_string("11111111-2222-4333-8444-555555555555");
    CHECK(h.call(*a, harness::request(guid, "{}", message_flags::client)).frame.code ==
          response_code::broadcast_not_allowed);
    CHECK(h.call(*a, harness::request(p::guid::broadcast(), "{}", message_flags::client)).frame.code ==
          response_code::broadcast_not_allowed);
    CHECK(peer_frames(*b).empty());
}

TEST_CASE("peers: each connection gets its own random peer GUID in its manifest") {
    harness h(relayed());
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    const auto pa = peer_of(*a), pb = peer_of(*b);
    CHECK(pa != pb);
    CHECK_FALSE(pa.is_nil());
    // Version 4, RFC 4122 variant (§6.3).
    CHECK((pa.bytes[6] >> 4) == 4);
    CHECK((pa.bytes[8] & 0xc0) == 0x80);
    // A new connection of the same session gets a new one.
    auto again = h.connect(token("alice", session_a));
    CHECK(peer_of(*again) != pa);
}

TEST_CASE("peers: a peer message is forwarded unchanged and acknowledged with the reference body") {
    harness h(relayed());
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    const auto pb = peer_of(*b);
    const auto frame = harness::request(pb, R"({"hello":"bob"})", message_flags::client, 3, 9, 0x0102030405060708ull);
    const auto ack = h.call(*a, frame, 0x0102030405060708ull);
    CHECK(ack.frame.code == response_code::ok);
    CHECK(ack.frame.flags == message_flags::response);
    CHECK(ack.frame.channel == 3);
    CHECK(ack.frame.sequence == 9);
    const auto body = ack.json();
    CHECK(body.at("Status") == "delivered");
    CHECK(body.at("TargetPeerGuid") == pb.to_string());
    CHECK(body.at("OriginalMessageId") == 0x0102030405060708ull);
    h.run_until([&] { return peer_frames(*b).size() == 1; });
    CHECK(*peer_frames(*b).at(0).bytes == frame);  // byte for byte
    CHECK(h.gw.stats().peer_messages_forwarded == 1);

    // With the Event flag: delivered, not acknowledged.
    const auto before = harness::responses(*a).size();
    a->send_binary(p::bytes_view(harness::request(pb, "{}", message_flags::client | message_flags::event, 0, 1, 77)));
    h.run_until([&] { return peer_frames(*b).size() == 2; });
    h.settle();
    CHECK(harness::responses(*a).size() == before);

    // The target answering a forwarded frame (as a client would a request)
    // matches nothing on the server and is dropped.
    std::string reply;
    p::append_frame(reply, p::response_header{message_flags::response, 3, 9, 0x0102030405060708ull, response_code::ok},
                    p::bytes_view("{}"));
    b->send_binary(p::bytes_view(reply));
    h.settle();
    CHECK(h.gw.stats().responses_unmatched == 1);
    CHECK_FALSE(a->closed());
    CHECK_FALSE(b->closed());
}

TEST_CASE("peers: unknown, nil and departed peer GUIDs -> 31") {
    auto o = relayed();
    harness h(o);
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    const auto pb = peer_of(*b);
    CHECK(h.call(*a, harness::request(p::guid_from_string("11111111-2222-4333-8444-555555555555"), "{}",
                                      message_flags::client))
              .frame.code == response_code::client_not_found);
    CHECK(h.call(*a, harness::request(p::guid::nil(), "{}", message_flags::client)).frame.code ==
          response_code::client_not_found);
    // Errors are answered even to Event-flagged frames (§8.2).
    CHECK(h.call(*a, harness::request(p::guid::nil(), "{}", message_flags::client | message_flags::event)).frame.code ==
          response_code::client_not_found);
    b->close();
    h.run_until([&] { return b->closed(); });
    h.settle();
    CHECK(h.call(*a, harness::request(pb, "{}", message_flags::client)).frame.code == response_code::client_not_found);
}

TEST_CASE("peers: a message to oneself is delivered like any other") {
    harness h(relayed());
    auto a = h.connect(token("alice", session_a));
    const auto ack = h.call(*a, harness::request(peer_of(*a), "{}", message_flags::client));
    CHECK(ack.frame.code == response_code::ok);
    CHECK(peer_frames(*a).size() == 1);
}

TEST_CASE("peers: broadcast needs peer_broadcast; then every other session gets it, unacknowledged") {
    SUBCASE("peer routing without broadcast -> 40") {
        harness h(relayed(false));
        auto a = h.connect(token("alice", session_a));
        auto b = h.connect(token("bob", session_b));
        CHECK(h.call(*a, harness::request(p::guid::broadcast(), "{}", message_flags::client)).frame.code ==
              response_code::broadcast_not_allowed);
        h.settle();
        CHECK(peer_frames(*b).empty());
    }
    SUBCASE("broadcast enabled") {
        harness h(relayed(true));
        auto a = h.connect(token("alice", session_a));
        auto b = h.connect(token("bob", session_b));
        auto c = h.connect(token("carol", "8b9619ff-8b86-4d11-b42d-00c04fc964bb"));
        const auto frame = harness::request(p::guid::broadcast(), R"({"all":1})", message_flags::client, 0, 1, 5);
        a->send_binary(p::bytes_view(frame));
        h.run_until([&] { return peer_frames(*b).size() == 1 && peer_frames(*c).size() == 1; });
        CHECK(*peer_frames(*b).at(0).bytes == frame);
        CHECK(*peer_frames(*c).at(0).bytes == frame);
        h.settle();
        CHECK(peer_frames(*a).empty());
        CHECK(harness::responses(*a).empty());
        CHECK(h.gw.stats().peer_messages_forwarded == 2);
    }
    SUBCASE("the broadcast GUID without the Client flag stays 10") {
        harness h(relayed(true));
        auto a = h.connect(token("alice", session_a));
        CHECK(h.call(*a, harness::request(p::guid::broadcast(), "{}")).frame.code == response_code::request_error);
    }
}

TEST_CASE("peers: limits apply: rate (12), payload size (11), empty payload (10), message size (1009)") {
    auto o = relayed(true);
    o.message_burst = 3;
    o.messages_per_minute = 1;
    o.max_message_size = 2048;
    o.max_payload_size = 256;
    harness h(o);
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    const auto pb = peer_of(*b);
    CHECK(h.call(*a, harness::request(pb, std::string(257, 'x'), message_flags::client)).frame.code ==
          response_code::request_too_large);
    CHECK(h.call(*a, harness::request(pb, "", message_flags::client)).frame.code == response_code::request_error);
    for (int i = 0; i < 3; ++i)
        CHECK(h.call(*a, harness::request(pb, "{}", message_flags::client)).frame.code == response_code::ok);
    CHECK(h.call(*a, harness::request(pb, "{}", message_flags::client)).frame.code == response_code::too_many_requests);
    CHECK(h.call(*a, harness::request(p::guid::broadcast(), "{}", message_flags::client)).frame.code ==
          response_code::too_many_requests);
    CHECK(peer_frames(*b).size() == 3);
    a->send_binary(p::bytes_view(harness::request(pb, std::string(2048, 'x'), message_flags::client)));
    h.run_until([&] { return a->closed(); });
    CHECK(a->server_close_code() == 1009);
    CHECK(peer_frames(*b).size() == 3);
}

TEST_CASE("peers: a slow target is closed 4005 and the sender then gets 31") {
    auto o = relayed();
    o.max_message_size = 4096;
    o.max_send_queue_bytes = 8192;
    o.message_burst = 100;
    harness h(o);
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    const auto pb = peer_of(*b);
    b->stall_reading(true);
    const std::string big(3000, 'x');
    std::set<int> codes;
    for (int i = 0; i < 4; ++i)
        codes.insert(static_cast<int>(
            h.call(*a, harness::request(pb, big, message_flags::client, 0, 1, 100 + static_cast<std::uint64_t>(i)),
                   100 + static_cast<std::uint64_t>(i))
                .frame.code));
    h.run_until([&] { return b->closed(); });
    CHECK(b->server_close_code() == 4005);
    CHECK(codes == std::set<int>{0, 31});
    CHECK_FALSE(a->closed());
}

TEST_CASE("peers: option validation") {
    auto o = default_options();
    o.peer_broadcast = true;
    CHECK_THROWS_AS(s::gateway(o, std::make_shared<scripted_validator>(), std::make_shared<session::memory_session_store>()),
                    std::invalid_argument);
}
