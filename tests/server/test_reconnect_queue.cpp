// Reconnection with queued events (PROTOCOL.md §13.4, §18): a session whose
// connection drops is parked on the node for reconnect_window; events pushed
// to it meanwhile are queued (bounded by bytes, count, age and a node-wide
// budget) and delivered in push order right after the manifest of the
// reconnection. On the in-memory transport.
#include "reconnect_helpers.hpp"

#include <algorithm>

using namespace gatehouse::test;
using p::response_code;

namespace {

s::gateway_options parking_options() {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 256 * 1024;
    return o;
}

}  // namespace

TEST_CASE("reconnect queue: a dropped session is parked and keeps its groups and account") {
    harness h(parking_options());
    auto c = h.connect(token("alice", session_a));
    REQUIRE_FALSE(h.gw.join_group(session_a, "room"));
    c->drop();
    wait_parked(h, 1);
    const auto st = h.gw.stats();
    CHECK(st.sessions == 0);
    CHECK(st.parked_sessions == 1);
    CHECK(h.gw.group_members("room") == std::vector<std::string>{session_a});
    // Every kind of push reaches it, and says so.
    CHECK_FALSE(h.gw.push_to_session(session_a, "e.session"));
    CHECK(h.gw.push_to_account("alice", "e.account") == 1);
    CHECK(h.gw.push_to_group("room", "e.group") == 1);
    CHECK(h.gw.push_to_all("e.all") == 1);
    CHECK(h.gw.stats().queued_events == 4);
    // Groups can still change while it is away.
    CHECK_FALSE(h.gw.join_group(session_a, "lobby"));
    CHECK_FALSE(h.gw.leave_group(session_a, "lobby"));
    // A parked session has no connection to change or ask.
    CHECK(h.gw.set_permissions(session_a, {}, {}) == s::server_errc::session_parked);
}

TEST_CASE("reconnect queue: a Reconnect token restores the session; queued events follow the manifest in push order") {
    harness h(parking_options());
    h.gw.add_endpoint(ep("test", "/echo"),
                      [](const r::request& req, r::responder answer) { answer.reply(req.payload.as_chars()); });
    auto c = h.connect(token("alice", session_a));
    auto other = h.connect(token("bob", session_b));
    REQUIRE_FALSE(h.gw.join_group(session_a, "room"));
    REQUIRE_FALSE(h.gw.join_group(session_b, "room"));
    // The host asks the client to come back later: a reconnectable close
    // with a token in the notification.
    CHECK_FALSE(h.gw.disconnect(session_a, 1001, "maintenance"));
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 1001);
    const auto reconnection = reconnection_token_of(*c);
    REQUIRE(session::is_reconnect_token(reconnection));
    h.run_until([&] { return h.gw.stats().parked_sessions == 1; });  // bob is still connected
    for (int i = 0; i < 5; ++i) {
        CHECK_FALSE(h.gw.push_to_session(session_a, "seq." + std::to_string(i * 2)));
        CHECK(h.gw.push_to_group("room", "seq." + std::to_string(i * 2 + 1)) == 2);
    }
    auto back = reconnect_with(h, reconnection);
    h.run_until([&] { return event_names(*back).size() == 10; });
    const auto names = all_event_names(*back);
    REQUIRE(names.size() == 11);
    CHECK(names[0] == "connect.capability-manifest");
    for (int i = 0; i < 10; ++i) CHECK(names[static_cast<std::size_t>(i) + 1] == "seq." + std::to_string(i));
    CHECK(harness::manifest_of(*back)->at("reason") == "session_reconnected");
    CHECK(harness::manifest_of(*back)->at("sessionId") == session_a);
    const auto st = h.gw.stats();
    CHECK(st.parked_sessions == 0);
    CHECK(st.queued_events == 0);
    CHECK(st.sessions_resumed == 1);
    CHECK(st.queued_events_delivered == 10);
    CHECK(st.queued_events_dropped == 0);
    // The restored session works, and is still in its group.
    CHECK(h.call(*back, harness::request(harness::guid_of(*back, "/echo"), "{}")).frame.code == response_code::ok);
    CHECK(h.gw.push_to_group("room", "after") == 2);
    h.run_until([&] { return event_names(*back).back() == "after"; });
    // The token was single-use.
    auto again = h.upgrade_with("Reconnect " + reconnection);
    h.run_until([&] { return again->closed(); });
    CHECK(again->server_close_code() == 4001);
}

TEST_CASE("reconnect queue: after a network drop the same credential's session resumes with its events") {
    harness h(parking_options());
    auto c = h.connect(token("alice", session_a));
    c->drop();
    wait_parked(h, 1);
    CHECK(h.gw.push_to_account("alice", "while.away") == 1);
    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*back).size() == 1; });
    CHECK(event_names(*back) == std::vector<std::string>{"while.away"});
    CHECK(harness::manifest_of(*back)->at("reason") == "session_reconnected");
    // A store-issued token works for a dropped session too.
    back->drop();
    wait_parked(h, 1);
    session::reconnect_token issued;
    h.store->issue_reconnect_token(session_a, std::chrono::seconds(10),
                                   [&](std::error_code ec, session::reconnect_token t) {
                                       REQUIRE_FALSE(ec);
                                       issued = std::move(t);
                                   });
    CHECK_FALSE(h.gw.push_to_session(session_a, "second.absence"));
    auto third = reconnect_with(h, issued.token);
    h.run_until([&] { return event_names(*third).size() == 1; });
    CHECK(event_names(*third) == std::vector<std::string>{"second.absence"});
    CHECK(h.gw.stats().sessions_resumed == 2);
}

TEST_CASE("reconnect queue: bounded by bytes per session (oldest evicted) and counted") {
    auto o = parking_options();
    o.reconnect_queue_max_bytes = 4096;
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    c->drop();
    wait_parked(h, 1);
    const nlohmann::json body = {{"blob", std::string(1000, 'x')}};
    for (int i = 0; i < 10; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "big." + std::to_string(i), body));
    auto st = h.gw.stats();
    CHECK(st.queued_events == 3);  // ~1.1 KiB each: three fit in 4 KiB
    CHECK(st.queued_events_dropped == 7);
    // An event larger than the whole queue is dropped at once.
    CHECK_FALSE(h.gw.push_to_session(session_a, "huge", {{"blob", std::string(5000, 'y')}}));
    CHECK(h.gw.stats().queued_events_dropped == 8);
    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*back).size() == 3; });
    CHECK(event_names(*back) == std::vector<std::string>{"big.7", "big.8", "big.9"});
}

TEST_CASE("reconnect queue: bounded by count per session") {
    auto o = parking_options();
    o.reconnect_queue_max_events = 2;
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    c->drop();
    wait_parked(h, 1);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "n." + std::to_string(i)));
    CHECK(h.gw.stats().queued_events == 2);
    CHECK(h.gw.stats().queued_events_dropped == 3);
    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*back).size() == 2; });
    CHECK(event_names(*back) == std::vector<std::string>{"n.3", "n.4"});
}

TEST_CASE("reconnect queue: events older than max_age are freed and never delivered") {
    auto o = parking_options();
    o.reconnect_queue_max_age = std::chrono::milliseconds(60);
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    c->drop();
    wait_parked(h, 1);
    CHECK_FALSE(h.gw.push_to_session(session_a, "stale"));
    CHECK(h.gw.stats().queued_events == 1);
    // The age timer frees it without any further push.
    h.run_until([&] { return h.gw.stats().queued_events == 0; });
    CHECK(h.gw.stats().queued_events_dropped == 1);
    CHECK(h.gw.stats().parked_sessions == 1);  // the session itself waits for the window
    CHECK_FALSE(h.gw.push_to_session(session_a, "fresh"));
    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*back).size() == 1; });
    h.settle();
    CHECK(event_names(*back) == std::vector<std::string>{"fresh"});
}

TEST_CASE("reconnect queue: a node-wide byte budget refuses newcomers instead of evicting others") {
    auto o = parking_options();
    o.reconnect_queue_max_bytes = 4096;
    o.reconnect_queue_total_bytes = 4096;
    harness h(o);
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    a->drop();
    b->drop();
    wait_parked(h, 2);
    const nlohmann::json body = {{"blob", std::string(1000, 'x')}};
    for (int i = 0; i < 3; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "a", body));
    CHECK(h.gw.stats().queued_events == 3);
    CHECK_FALSE(h.gw.push_to_session(session_b, "b", body));
    CHECK(h.gw.stats().queued_events == 3);
    CHECK(h.gw.stats().queued_events_dropped == 1);
}

TEST_CASE("reconnect queue: when the window passes the session, its groups and its queue are freed") {
    auto o = parking_options();
    o.reconnect_window = std::chrono::milliseconds(80);
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    REQUIRE_FALSE(h.gw.join_group(session_a, "room"));
    c->drop();
    wait_parked(h, 1);
    CHECK_FALSE(h.gw.push_to_session(session_a, "lost"));
    h.run_until([&] { return h.gw.stats().parked_sessions == 0; });
    const auto st = h.gw.stats();
    CHECK(st.sessions_expired == 1);
    CHECK(st.queued_events == 0);
    CHECK(st.queued_events_dropped == 1);
    CHECK(h.gw.group_members("room").empty());
    CHECK(h.gw.push_to_session(session_a, "x") == s::server_errc::session_not_found);
    CHECK(h.gw.push_to_account("alice", "x") == 0);
    // A later connection is a fresh start, without the old events.
    auto back = h.connect(token("alice", session_a));
    CHECK(harness::manifest_of(*back)->at("reason") == "session_connected");
    h.settle();
    CHECK(event_names(*back).empty());
}

TEST_CASE("reconnect queue: sessions that ended for good are not parked") {
    harness h(parking_options());
    SUBCASE("the client closed with 1000") {
        auto c = h.connect(token("alice", session_a));
        c->close(1000);
    }
    SUBCASE("the session was kicked") {
        auto c = h.connect(token("alice", session_a));
        CHECK_FALSE(h.gw.disconnect(session_a, 4002, "kicked"));
    }
    SUBCASE("the session expired (4001)") {
        auto c = h.connect(token("alice", session_a));
        CHECK_FALSE(h.gw.disconnect(session_a, 4001, "expired"));
    }
    SUBCASE("a policy violation (4008) earns no parking") {
        auto c = h.connect(token("alice", session_a));
        CHECK_FALSE(h.gw.disconnect(session_a, 4008, "abuse"));
        h.run_until([&] { return c->closed(); });
        CHECK(reconnection_token_of(*c).empty());
    }
    SUBCASE("the session was revoked") {
        auto c = h.connect(token("alice", session_a));
        h.gw.revoke_session(session_a);
    }
    h.run_until([&] { return h.gw.stats().connections == 0; });
    h.settle();
    CHECK(h.gw.stats().parked_sessions == 0);
    CHECK(h.gw.push_to_session(session_a, "x") == s::server_errc::session_not_found);
}

TEST_CASE("reconnect queue: a replaced connection is not parked; its session lives on in the new one") {
    harness h(parking_options());
    auto first = h.connect(token("alice", session_a));
    auto second = h.connect(token("alice", session_a));
    h.run_until([&] { return first->closed(); });
    CHECK(first->server_close_code() == 4002);
    h.settle();
    CHECK(h.gw.stats().parked_sessions == 0);
    CHECK(h.gw.stats().sessions == 1);
    CHECK_FALSE(h.gw.push_to_session(session_a, "to.second"));
    h.run_until([&] { return event_names(*second).size() == 1; });
}

TEST_CASE("reconnect queue: revocation and disconnect forget a parked session and its queue") {
    harness h(parking_options());
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    REQUIRE_FALSE(h.gw.join_group(session_a, "room"));
    CHECK_FALSE(h.gw.disconnect(session_a, 1001, "maintenance"));
    h.run_until([&] { return a->closed(); });
    const auto reconnection = reconnection_token_of(*a);
    b->drop();
    wait_parked(h, 2);
    CHECK_FALSE(h.gw.push_to_session(session_a, "x"));
    CHECK_FALSE(h.gw.push_to_session(session_b, "y"));

    std::optional<std::error_code> revoked;
    h.gw.revoke_session(session_a, [&](std::error_code ec) { revoked = ec; });
    h.run_until([&] { return revoked.has_value(); });
    CHECK(h.gw.stats().parked_sessions == 1);
    CHECK(h.gw.group_members("room").empty());
    // Its reconnection token died with it (the store no longer knows it).
    auto refused = h.upgrade_with("Reconnect " + reconnection);
    h.run_until([&] { return refused->closed(); });
    CHECK(refused->server_close_code() == 4001);
    CHECK(h.gw.stats().sessions == 0);

    CHECK_FALSE(h.gw.disconnect(session_b, 4002, "kicked"));
    CHECK(h.gw.stats().parked_sessions == 0);
    CHECK(h.gw.stats().queued_events == 0);
    CHECK(h.gw.stats().queued_events_dropped == 2);
    CHECK(h.gw.disconnect(session_b, 4002, "kicked") == s::server_errc::session_not_found);
}

TEST_CASE("reconnect queue: events pushed while the connection is closing are kept for the next one") {
    harness h(parking_options());
    auto c = h.connect(token("alice", session_a));
    // A reconnectable close waits for the store's token; pushes posted
    // around it must land either on the old socket or in the queue.
    CHECK_FALSE(h.gw.disconnect(session_a, 1001, "maintenance"));
    for (int i = 0; i < 20; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "p." + std::to_string(i)));
    h.run_until([&] { return c->closed(); });
    wait_parked(h, 1);
    for (int i = 20; i < 25; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "p." + std::to_string(i)));
    auto back = reconnect_with(h, reconnection_token_of(*c));
    std::vector<std::string> seen;
    for (const auto& name : event_names(*c))
        if (name.rfind("p.", 0) == 0) seen.push_back(name);
    h.run_until([&] { return event_names(*back).size() + seen.size() == 25; });
    for (const auto& name : event_names(*back)) seen.push_back(name);
    REQUIRE(seen.size() == 25);
    for (int i = 0; i < 25; ++i) CHECK(seen[static_cast<std::size_t>(i)] == "p." + std::to_string(i));
}

TEST_CASE("reconnect queue: stop() parks nothing and forgets parked sessions") {
    harness h(parking_options());
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    a->drop();
    h.run_until([&] { return h.gw.stats().parked_sessions == 1; });
    CHECK_FALSE(h.gw.push_to_session(session_a, "x"));
    h.gw.stop();
    h.run_until([&] { return b->closed(); });
    h.settle();
    CHECK(h.gw.stats().parked_sessions == 0);
    CHECK(h.gw.stats().queued_events == 0);
    CHECK(b->server_close_code() == 1001);
}

TEST_CASE("reconnect queue: logs say what was dropped, never a token") {
    auto o = parking_options();
    o.reconnect_queue_max_events = 1;
    auto lines = std::make_shared<std::vector<std::string>>();
    auto mutex = std::make_shared<std::mutex>();
    o.log = [lines, mutex](s::log_level, std::string_view line) {
        std::lock_guard<std::mutex> lock(*mutex);
        lines->emplace_back(line);
    };
    harness h(o);
    auto c = h.connect(token("alice", session_a));
    CHECK_FALSE(h.gw.disconnect(session_a, 1001, "maintenance"));
    h.run_until([&] { return c->closed(); });
    const auto reconnection = reconnection_token_of(*c);
    wait_parked(h, 1);
    CHECK_FALSE(h.gw.push_to_session(session_a, "one"));
    CHECK_FALSE(h.gw.push_to_session(session_a, "two"));
    auto back = reconnect_with(h, reconnection);
    h.run_until([&] { return event_names(*back).size() == 1; });
    std::lock_guard<std::mutex> lock(*mutex);
    const auto has = [&](const std::string& text) {
        return std::any_of(lines->begin(), lines->end(),
                           [&](const std::string& l) { return l.find(text) != std::string::npos; });
    };
    CHECK(has("session parked for reconnection"));
    CHECK(has("dropping events"));
    CHECK(has("resumed by a reconnection with 1 queued events"));
    CHECK_FALSE(has(reconnection));
}

TEST_CASE("reconnect queue: option validation") {
    const auto rejects = [](const std::function<void(s::gateway_options&)>& change) {
        auto o = parking_options();
        change(o);
        CHECK_THROWS_AS(s::gateway(o, std::make_shared<scripted_validator>(),
                                   std::make_shared<session::memory_session_store>()),
                        std::invalid_argument);
    };
    rejects([](s::gateway_options& o) { o.reconnect_queue_max_events = 0; });
    rejects([](s::gateway_options& o) { o.reconnect_queue_max_age = std::chrono::milliseconds(0); });
    rejects([](s::gateway_options& o) { o.reconnect_queue_total_bytes = o.reconnect_queue_max_bytes - 1; });
    rejects([](s::gateway_options& o) { o.reconnect_window = std::chrono::milliseconds(0); });
    rejects([](s::gateway_options& o) { o.reconnect_queue_max_bytes = o.max_send_queue_bytes / 2 + 1; });
    // 0 bytes disables parking; the other bounds are then irrelevant.
    auto off = parking_options();
    off.reconnect_queue_max_bytes = 0;
    off.reconnect_queue_max_events = 0;
    CHECK_NOTHROW(s::gateway(off, std::make_shared<scripted_validator>(),
                             std::make_shared<session::memory_session_store>()));
}
