// Lifecycle (§13, §18): disconnect notifications as binary events before the
// close, token expiry while connected (4001), the built-in /connect/refresh,
// and shutdown with reconnection tokens.
#include "harness.hpp"

using namespace gatehouse::test;
using p::response_code;

namespace {
std::optional<nlohmann::json> notification_of(const s::memory_client& c) {
    for (const auto& e : harness::events(c))
        if (e.value("eventName", "") == "connect.disconnect-notification") return e;
    return std::nullopt;
}

std::string refresh_body(const std::string& access_token) {
    return nlohmann::json{{"accessToken", access_token}}.dump();
}
}  // namespace

TEST_CASE("disconnect notification: a kicked session is told why, not reconnectable, before the close") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    h.gw.revoke_session(session_a);
    h.run_until([&] { return c->closed(); });
    const auto n = notification_of(*c);
    REQUIRE(n.has_value());
    CHECK(n->at("reason") == "kicked");
    CHECK(n->at("reconnectable") == false);
    CHECK_FALSE(n->contains("reconnectionToken"));
    CHECK(n->contains("eventId"));
    CHECK(c->server_close_code() == 4002);
    // It is the last message before the close, framed as an event (§9.1).
    const auto last = decode_all(c->frames()).back();
    CHECK(last.frame.flags == p::message_flags::event);
}

TEST_CASE("disconnect notification: a replaced connection is told it was kicked") {
    harness h;
    auto first = h.connect(token("alice", session_a));
    auto second = h.connect(token("alice", session_a));
    h.run_until([&] { return first->closed(); });
    REQUIRE(notification_of(*first).has_value());
    CHECK(notification_of(*first)->at("reason") == "kicked");
    CHECK_FALSE(notification_of(*second).has_value());
}

TEST_CASE("shutdown: reconnectable notification with a single-use reconnection token, then 1001") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    h.gw.stop();
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 1001);
    const auto n = notification_of(*c);
    REQUIRE(n.has_value());
    CHECK(n->at("reason") == "server_shutdown");
    CHECK(n->at("reconnectable") == true);
    CHECK(n->at("expiresAt").get<std::string>().back() == 'Z');
    const auto reconnect = n->at("reconnectionToken").get<std::string>();
    CHECK(session::is_reconnect_token(reconnect));
    // The token belongs to the session (another node could restore it).
    std::string restored;
    h.store->consume_reconnect_token(reconnect, [&](std::error_code ec, session::session_record r) {
        CHECK_FALSE(ec);
        restored = r.session_id;
    });
    CHECK(restored == session_a);
    // A stopped gateway refuses new upgrades.
    CHECK(h.upgrade_with("Bearer " + token("bob", session_b))->status() == 503);
}

TEST_CASE("token expiry while connected: notification session_expired, then 4001") {
    harness h;
    auto c = h.connect(token("alice", session_a, "", "", "sync", 150));
    CHECK_FALSE(c->closed());
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 4001);
    REQUIRE(notification_of(*c).has_value());
    CHECK(notification_of(*c)->at("reason") == "session_expired");
    CHECK(notification_of(*c)->at("reconnectable") == false);
}

TEST_CASE("/connect/refresh: a new token for the same account moves the expiry; others are refused") {
    auto o = default_options();
    o.refresh_endpoint = true;
    harness h(o);
    auto c = h.connect(token("alice", session_a, "", "", "sync", 300));
    const auto refresh = harness::guid_of(*c, "/connect/refresh");
    CHECK(harness::manifest_of(*c)->at("availableApis")[0].at("service") == "connect");

    // Another account's token, a bad token, a malformed body: refused, expiry unchanged.
    CHECK(h.call(*c, harness::request(refresh, refresh_body(token("bob", session_b, "", "", "sync", 60000))))
              .frame.code == response_code::backend_unauthorized);
    CHECK(h.call(*c, harness::request(refresh, refresh_body("bad"))).frame.code == response_code::backend_unauthorized);
    CHECK(h.call(*c, harness::request(refresh, "{}")).frame.code == response_code::backend_bad_request);
    CHECK(h.call(*c, harness::request(refresh, "not json")).frame.code == response_code::backend_bad_request);

    const auto reply = h.call(*c, harness::request(refresh, refresh_body(token("alice", session_a, "", "", "sync", 60000))));
    CHECK(reply.frame.code == response_code::ok);
    CHECK(reply.json().at("expiresAt").get<std::string>().back() == 'Z');
    h.settle(std::chrono::milliseconds(450));  // past the first expiry
    CHECK_FALSE(c->closed());

    // Refreshing with an asynchronously validated token works too.
    const auto again = h.call(*c, harness::request(refresh, refresh_body(token("alice", session_a, "", "", "async", 100))));
    CHECK(again.frame.code == response_code::ok);
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 4001);
}
