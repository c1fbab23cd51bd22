// Upgrades on the in-memory transport (PROTOCOL.md §2, §18): credentials
// from each source, refusals with each status, caps, asynchronous
// validation and session attachment, reconnection, replacement.
#include "harness.hpp"

using namespace gatehouse::test;

namespace {
s::memory_upgrade with_header(const std::string& name, const std::string& value) {
    s::memory_upgrade u;
    u.headers.push_back({name, value});
    return u;
}
}  // namespace

TEST_CASE("upgrade: Bearer accepted, no subprotocol in the answer, session id from the session key") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    CHECK(c->status() == 101);
    CHECK(c->subprotocol().empty());
    CHECK(harness::manifest_of(*c)->at("sessionId") == session_a);
    CHECK(h.validator->last_kind == auth::credential_kind::bearer);
    // The session exists in the store, bound to the account.
    std::error_code ec;
    session::session_record record;
    h.store->load(session_a, [&](std::error_code e, session::session_record rec) {
        ec = e;
        record = std::move(rec);
    });
    CHECK_FALSE(ec);
    CHECK(record.account_id == "alice");
    CHECK(record.node_id == "gatehouse");
    CHECK(h.gw.stats().sessions == 1);
}

TEST_CASE("upgrade: the scheme is case-insensitive; a non-GUID session key maps to a stable session id") {
    harness h;
    auto c1 = h.upgrade_with("bearer " + token("alice", "my-session-key"));
    REQUIRE(c1->status() == 101);
    h.run_until([&] { return harness::manifest_of(*c1).has_value(); });
    const auto sid = harness::manifest_of(*c1)->at("sessionId").get<std::string>();
    CHECK(session::is_session_id(sid));
    c1->close();
    h.run_until([&] { return c1->closed(); });
    auto c2 = h.connect(token("alice", "my-session-key"));
    CHECK(harness::manifest_of(*c2)->at("sessionId") == sid);
}

TEST_CASE("upgrade: a credential without session key gets a fresh session each time") {
    harness h;
    auto c1 = h.connect(token("alice", ""));
    auto c2 = h.connect(token("alice", ""));
    const auto a = harness::manifest_of(*c1)->at("sessionId").get<std::string>();
    const auto b = harness::manifest_of(*c2)->at("sessionId").get<std::string>();
    CHECK(session::is_session_id(a));
    CHECK(a != b);
    CHECK_FALSE(c1->closed());
}

TEST_CASE("upgrade: ApiKey only when configured") {
    SUBCASE("off: 401") {
        harness h;
        auto c = h.upgrade_with("ApiKey key-1");
        CHECK(c->status() == 401);
        CHECK(h.validator->calls == 0);
    }
    SUBCASE("on: validated as an api_key credential") {
        auto o = default_options();
        o.accept_api_keys = true;
        harness h(o);
        auto c = h.upgrade_with("ApiKey key-1");
        CHECK(c->status() == 101);
        CHECK(h.validator->last_kind == auth::credential_kind::api_key);
        h.run_until([&] { return harness::manifest_of(*c).has_value(); });
    }
}

TEST_CASE("upgrade: ?token= only when configured, url-decoded") {
    const std::string t = token("alice", session_a);
    std::string encoded;
    for (char ch : t) encoded += ch == '|' ? std::string("%7C") : std::string(1, ch);
    SUBCASE("off: 401") {
        harness h;
        s::memory_upgrade u;
        u.resource = "/connect?token=" + encoded;
        CHECK(h.upgrade(u)->status() == 401);
    }
    SUBCASE("on") {
        auto o = default_options();
        o.accept_query_token = true;
        harness h(o);
        s::memory_upgrade u;
        u.resource = "/connect?x=1&token=" + encoded;
        auto c = h.upgrade(u);
        CHECK(c->status() == 101);
        h.run_until([&] { return harness::manifest_of(*c).has_value(); });
        CHECK(harness::manifest_of(*c)->at("sessionId") == session_a);
        s::memory_upgrade bad;
        bad.resource = "/connect?token=%zz";
        CHECK(h.upgrade(bad)->status() == 401);
    }
}

TEST_CASE("upgrade: Sec-WebSocket-Protocol token only when configured; the answer names the marker only") {
    const std::string t = token("alice", session_a);
    SUBCASE("off: 401") {
        harness h;
        s::memory_upgrade u;
        u.subprotocols = {"bearer", t};
        CHECK(h.upgrade(u)->status() == 401);
    }
    SUBCASE("on") {
        auto o = default_options();
        o.accept_subprotocol_token = true;
        harness h(o);
        s::memory_upgrade u;
        u.subprotocols = {"bearer", t};
        auto c = h.upgrade(u);
        CHECK(c->status() == 101);
        CHECK(c->subprotocol() == "bearer");
        s::memory_upgrade other;
        other.subprotocols = {"chat", "v2"};
        CHECK(h.upgrade(other)->status() == 401);
    }
}

TEST_CASE("upgrade refusals: 404 path, 401 credentials, 403 origin, 429 rate, 503 caps") {
    SUBCASE("path") {
        harness h;
        s::memory_upgrade u = with_header("Authorization", "Bearer " + token("alice", session_a));
        u.resource = "/other";
        CHECK(h.upgrade(u)->status() == 404);
        u.resource = "/connect/more";
        CHECK(h.upgrade(u)->status() == 404);
    }
    SUBCASE("credentials") {
        harness h;
        CHECK(h.upgrade({})->status() == 401);
        CHECK(h.upgrade_with("")->status() == 401);
        CHECK(h.upgrade_with("Bearer ")->status() == 401);
        CHECK(h.upgrade_with("Basic dXNlcjpwYXNz")->status() == 401);
        CHECK(h.upgrade_with("Internal")->status() == 401);
        auto refused = h.upgrade_with("Bearer bad");
        CHECK(refused->status() == 401);
        CHECK(refused->body() == "Invalid or missing credentials");
        CHECK(refused->closed());
        CHECK(h.gw.stats().upgrades_refused == 6);
        CHECK(h.gw.stats().connections == 0);
    }
    SUBCASE("origin") {
        auto o = default_options();
        o.allowed_origins = {"https://game.example"};
        harness h(o);
        auto u = with_header("Authorization", "Bearer " + token("alice", session_a));
        u.headers.push_back({"Origin", "https://evil.example"});
        CHECK(h.upgrade(u)->status() == 403);
        u.headers.back().second = "https://game.example";
        CHECK(h.upgrade(u)->status() == 101);
        // No Origin header (not a browser): allowed.
        CHECK(h.upgrade_with("Bearer " + token("bob", session_b))->status() == 101);
    }
    SUBCASE("connect rate per source address") {
        auto o = default_options();
        o.connect_burst = 2;
        o.connects_per_second = 0.001;
        harness h(o);
        CHECK(h.upgrade_with("Bearer bad")->status() == 401);
        CHECK(h.upgrade_with("Bearer bad")->status() == 401);
        CHECK(h.upgrade_with("Bearer " + token("alice", session_a))->status() == 429);
        auto u = with_header("Authorization", "Bearer " + token("alice", session_a));
        u.remote_address = "10.0.0.2";
        CHECK(h.upgrade(u)->status() == 101);
    }
    SUBCASE("connections per node") {
        auto o = default_options();
        o.max_connections = 1;
        harness h(o);
        auto first = h.connect(token("alice", session_a));
        auto second = h.upgrade_with("Bearer " + token("bob", session_b));
        CHECK(second->status() == 503);
        first->close();
        h.run_until([&] { return first->closed() && h.gw.stats().connections == 0; });
        CHECK(h.upgrade_with("Bearer " + token("bob", session_b))->status() == 101);
    }
    SUBCASE("sessions per account; replacing a live session does not count") {
        auto o = default_options();
        o.max_sessions_per_account = 1;
        harness h(o);
        auto first = h.connect(token("alice", session_a));
        CHECK(h.upgrade_with("Bearer " + token("alice", session_b))->status() == 503);
        CHECK(h.upgrade_with("Bearer " + token("alice", session_a))->status() == 101);
    }
}

TEST_CASE("one socket per session: a new connection replaces the old one with 4002") {
    harness h;
    auto first = h.connect(token("alice", session_a));
    auto second = h.connect(token("alice", session_a));
    h.run_until([&] { return first->closed(); });
    CHECK(first->server_close_code() == 4002);
    CHECK_FALSE(second->closed());
    CHECK(h.gw.stats().sessions == 1);
    // The survivor keeps the session: pushes reach it.
    CHECK_FALSE(h.gw.push_to_session(session_a, "test.ping"));
    h.run_until([&] { return harness::events(*second).size() == 1; });
    // The replaced one got only its disconnect notification.
    const auto old_events = harness::events(*first);
    REQUIRE(old_events.size() == 1);
    CHECK(old_events[0].at("eventName") == "connect.disconnect-notification");
}

TEST_CASE("asynchronous validation: success attaches, failure closes 4001 after the 101") {
    harness h;
    auto ok = h.upgrade_with("Bearer " + token("alice", session_a, "", "", "async"));
    CHECK(ok->status() == 101);
    h.run_until([&] { return harness::manifest_of(*ok).has_value(); });
    auto bad = h.upgrade_with("Bearer badasync|x");
    CHECK(bad->status() == 101);
    h.run_until([&] { return bad->closed(); });
    CHECK(bad->server_close_code() == 4001);
    CHECK(harness::manifest_of(*bad) == std::nullopt);
}

TEST_CASE("reconnection token: same session, manifest reason session_reconnected; unknown token 4001") {
    harness h;
    h.gw.add_endpoint(ep("t", "/x"), [](const r::request&, r::responder answer) { answer.reply("{}"); });
    auto first = h.connect(token("alice", session_a, "secret:read"));
    session::reconnect_token issued;
    h.store->issue_reconnect_token(session_a, std::chrono::seconds(60),
                                   [&](std::error_code ec, session::reconnect_token t) {
                                       REQUIRE_FALSE(ec);
                                       issued = std::move(t);
                                   });
    first->close();
    h.run_until([&] { return first->closed(); });
    auto again = h.upgrade_with("Reconnect " + issued.token);
    REQUIRE(again->status() == 101);
    h.run_until([&] { return harness::manifest_of(*again).has_value(); });
    const auto m = *harness::manifest_of(*again);
    CHECK(m.at("sessionId") == session_a);
    CHECK(m.at("reason") == "session_reconnected");
    // Same GUIDs as before (they depend on session, key and salt only).
    CHECK(harness::guid_of(*again, "/x") == r::service_guid(session_a, "t:/x", salt));
    // The token works once.
    auto replay = h.upgrade_with("Reconnect " + issued.token);
    REQUIRE(replay->status() == 101);
    h.run_until([&] { return replay->closed(); });
    CHECK(replay->server_close_code() == 4001);
    // A malformed token is refused at the upgrade.
    CHECK(h.upgrade_with("Reconnect short")->status() == 401);
}

TEST_CASE("a revoked session closes 4002 when its token is used again") {
    harness h;
    auto first = h.connect(token("alice", session_a));
    first->close();
    h.run_until([&] { return first->closed(); });
    h.store->revoke(session_a, [](std::error_code ec) { REQUIRE_FALSE(ec); });
    auto again = h.upgrade_with("Bearer " + token("alice", session_a));
    REQUIRE(again->status() == 101);
    h.run_until([&] { return again->closed(); });
    CHECK(again->server_close_code() == 4002);
    CHECK(again->server_close_reason() == "kicked");
}

TEST_CASE("a session key of another account is refused with 4001") {
    harness h;
    auto first = h.connect(token("alice", session_a));
    auto thief = h.upgrade_with("Bearer " + token("mallory", session_a));
    REQUIRE(thief->status() == 101);
    h.run_until([&] { return thief->closed(); });
    CHECK(thief->server_close_code() == 4001);
    CHECK_FALSE(first->closed());
}

TEST_CASE("failure injection: a socket dying between the upgrade and the open releases its slot") {
    harness h;
    auto u = with_header("Authorization", "Bearer " + token("alice", session_a));
    u.fail_before_open = true;
    auto c = h.upgrade(u);
    CHECK(c->status() == 101);
    h.run_until([&] { return h.gw.stats().connections == 0; });
    CHECK(h.gw.stats().sessions == 0);
}

TEST_CASE("failure injection: an abrupt drop unregisters the session and its groups") {
    harness h;
    auto c = h.connect(token("alice", session_a));
    CHECK_FALSE(h.gw.join_group(session_a, "room"));
    c->drop();
    h.run_until([&] { return h.gw.stats().connections == 0; });
    CHECK(h.gw.stats().sessions == 0);
    CHECK(h.gw.group_members("room").empty());
    CHECK(h.gw.push_to_session(session_a, "x") == s::server_errc::session_not_found);
}

TEST_CASE("keep-alive: pings every interval; a peer that stops answering is dropped") {
    auto o = default_options();
    o.ping_interval = std::chrono::milliseconds(20);
    o.pong_timeout = std::chrono::milliseconds(40);
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    h.run_until([&] { return c->pings() >= 3; });
    CHECK_FALSE(c->closed());
    c->answer_pings(false);
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 0);  // dropped, no close frame
    h.run_until([&] { return h.gw.stats().connections == 0; });
    CHECK(h.gw.stats().sessions == 0);
}

TEST_CASE("keep-alive: ping_interval 0 disables pings") {
    auto o = default_options();
    o.ping_interval = std::chrono::milliseconds(0);
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    h.settle(std::chrono::milliseconds(50));
    CHECK(c->pings() == 0);
}
