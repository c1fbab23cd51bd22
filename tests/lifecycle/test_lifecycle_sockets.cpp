// Lifecycle hooks and abuse limits over real sockets (issue 12), with the
// websocketpp transport and the raw RFC 6455 clients of socket_harness.hpp:
// opened/closed for a clean close, parked(dropped) for a TCP connection that
// ends without a close frame and resumed when the client comes back (same
// bearer token, or a Reconnect token from a disconnect notification), the
// per-address connection cap (429) and the per-account message bucket
// shared by an account's sessions (12).
#include "../server/socket_harness.hpp"
#include "recording_observer.hpp"

#include <gatehouse/server/metrics.hpp>

using namespace gatehouse::test;
using namespace gatehouse::test::sockets;
using p::response_code;

namespace {

constexpr std::chrono::milliseconds event_timeout{8000};

/// Events of the frames a client kept (binary, Event flag), as JSON.
std::vector<nlohmann::json> events_in(const std::vector<server_frame>& frames) {
    std::vector<nlohmann::json> out;
    for (const auto& f : frames) {
        if (f.opcode != lg::ws_opcode::binary) continue;
        p::frame_view view;
        if (p::decode_frame(p::bytes_view(f.payload), view) || view.is_response() ||
            !view.has(p::message_flags::event))
            continue;
        auto j = nlohmann::json::parse(view.payload.as_chars(), nullptr, false);
        if (j.is_object()) out.push_back(std::move(j));
    }
    return out;
}

/// Reads frames until a manifest; true when one came.
bool read_manifest(ws_client& c, ms timeout = ms(5000)) {
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        auto f = c.read_frame(std::chrono::duration_cast<ms>(deadline - clock_type::now()));
        if (!f) return false;
        std::vector<server_frame> one{*f};
        for (const auto& e : events_in(one))
            if (e.value("eventName", "") == "connect.capability-manifest") return true;
    }
}

/// A live gateway reporting to a recording observer.
struct observed_gateway {
    explicit observed_gateway(s::gateway_options o)
        : obs(std::make_shared<recording_observer>()), live(with_observer(std::move(o), obs)) {}
    static s::gateway_options with_observer(s::gateway_options o, std::shared_ptr<recording_observer> rec) {
        o.observer = std::move(rec);
        return o;
    }
    void wait(const std::string& session_id, std::size_t n) {
        CHECK_MESSAGE(obs->wait_for(session_id, n, event_timeout),
                      "expected " << n << " events for " << session_id << ", got: " << obs->trace(session_id));
    }
    std::shared_ptr<recording_observer> obs;
    live_gateway live;
};

s::gateway_options parking_socket_options() {
    auto o = socket_options();
    o.reconnect_queue_max_bytes = 256 * 1024;
    o.reconnect_window = std::chrono::seconds(30);
    return o;
}

}  // namespace

TEST_CASE("lifecycle sockets: connect, call, close 1000: opened(created), closed(client_closed, 1000)") {
    observed_gateway g(parking_socket_options());
    ws_client c(g.live.port);
    c.connect(token("alice", session_a));
    const auto reply = c.call("/echo", R"({"hello":1})", 5);
    REQUIRE(reply.has_value());
    CHECK(reply->code == response_code::ok);
    CHECK(c.close_cleanly());
    g.wait(session_a, 2);
    CHECK(g.obs->trace(session_a) == "opened(created) closed(client_closed,1000)");
    const auto events = g.obs->events_of(session_a);
    REQUIRE(events.size() == 2);
    CHECK(events[0].remote_address == "127.0.0.1");
    CHECK(events[0].account_id == "alice");
    CHECK(g.live.gw->stats().parked_sessions == 0);
}

TEST_CASE("lifecycle sockets: a TCP drop parks (dropped); the same bearer token resumes; a Reconnect token too") {
    observed_gateway g(parking_socket_options());
    auto c = std::make_unique<ws_client>(g.live.port);
    c->connect(token("alice", session_a));
    g.wait(session_a, 1);
    c.reset();  // the socket closes without a close frame
    g.wait(session_a, 2);
    CHECK(g.obs->trace(session_a) == "opened(created) parked(dropped,1006)");

    // Back with the same credential.
    c = std::make_unique<ws_client>(g.live.port);
    c->connect(token("alice", session_a));
    g.wait(session_a, 3);
    CHECK(g.obs->events_of(session_a).at(2).describe() == "resumed(after_park)");
    CHECK(g.obs->events_of(session_a).at(2).remote_address == "127.0.0.1");

    // The host asks it to come back later: the notification carries a
    // Reconnect token; the client goes away without answering the close.
    CHECK_FALSE(g.live.gw->disconnect(session_a, 4000, "come back later"));
    CHECK(c->read_close(ms(5000)) == std::optional<std::uint16_t>(4000));
    std::string reconnection;
    for (const auto& e : events_in(c->received))
        if (e.value("eventName", "") == "connect.disconnect-notification")
            reconnection = e.value("reconnectionToken", "");
    REQUIRE(session::is_reconnect_token(reconnection));
    c.reset();
    g.wait(session_a, 4);
    CHECK(g.obs->events_of(session_a).at(3).describe() == "parked(kicked,4000)");

    c = std::make_unique<ws_client>(g.live.port);
    REQUIRE(c->upgrade("Reconnect " + reconnection) == 101);
    REQUIRE(read_manifest(*c));
    g.wait(session_a, 5);
    CHECK(c->close_cleanly());
    g.wait(session_a, 6);
    CHECK(g.obs->trace(session_a) == "opened(created) parked(dropped,1006) resumed(after_park) parked(kicked,4000) "
                                     "resumed(after_park) closed(client_closed,1000)");
    CHECK(g.obs->lifetime_violations() == "");
    CHECK(g.live.gw->stats().sessions_resumed == 2);
}

TEST_CASE("lifecycle sockets: max_connections_per_address over loopback: the third gets 429, counted; later accepted") {
    auto o = socket_options();
    o.max_connections_per_address = 2;
    o.limit_loopback_addresses = true;
    auto metrics = std::make_shared<s::prometheus_metrics>();
    o.metrics = metrics;
    observed_gateway g(o);
    auto first = std::make_unique<ws_client>(g.live.port);
    first->connect(token("alice", session_a));
    ws_client second(g.live.port);
    second.connect(token("bob", session_b));

    ws_client third(g.live.port);
    CHECK(third.upgrade("Bearer " + token("carol", "8b9619ff-8b86-4d11-b42d-00c04fc964bb")) == 429);
    // The body says why (it may arrive after the head).
    const auto deadline = clock_type::now() + ms(3000);
    while (third.socket.buffer.find("address") == std::string::npos && clock_type::now() < deadline &&
           third.socket.read_some(ms(200)) != client_socket::read_status::closed) {
    }
    CHECK(third.socket.buffer.find("Too many connections from this address") != std::string::npos);
    CHECK(metrics->upgrades(s::upgrade_result::address_limit) == 1);
    CHECK(g.live.gw->stats().upgrades_refused == 1);

    // One leaves: a new connection from the same address is accepted.
    CHECK(first->close_cleanly());
    first.reset();
    REQUIRE(g.live.wait_for_connections(1, ms(5000)));
    ws_client fourth(g.live.port);
    fourth.connect(token("dave", "9c9619ff-8b86-4d11-b42d-00c04fc964cc"));
    const auto reply = fourth.call("/echo", "{}", 1);
    REQUIRE(reply.has_value());
    CHECK(reply->code == response_code::ok);
    CHECK(metrics->upgrades(s::upgrade_result::address_limit) == 1);
    // The refused upgrade never became a session.
    g.wait(session_a, 2);
    CHECK(g.obs->trace("8b9619ff-8b86-4d11-b42d-00c04fc964bb") == "");
}

TEST_CASE("lifecycle sockets: the per-account bucket is shared by the account's sessions (12, counted)") {
    auto o = socket_options();
    // Per connection: 4 at once; per account: 6 at once; refills too slow to matter.
    o.messages_per_minute = 1;
    o.message_burst = 4;
    o.account_messages_per_minute = 1;
    o.account_message_burst = 6;
    observed_gateway g(o);
    ws_client a(g.live.port);
    a.connect(token("alice", session_a));
    ws_client b(g.live.port);
    b.connect(token("alice", session_b));
    ws_client other(g.live.port);
    other.connect(token("bob", "8b9619ff-8b86-4d11-b42d-00c04fc964bb"));

    std::uint64_t id = 100;
    const auto code_of = [&](ws_client& c) {
        const auto reply = c.call("/echo", "{}", ++id);
        REQUIRE(reply.has_value());
        return reply->code;
    };
    // Session A alone: its whole own burst.
    for (int i = 0; i < 4; ++i) CHECK(code_of(a) == response_code::ok);
    // Session B: under its own burst, but the account has 2 left.
    CHECK(code_of(b) == response_code::ok);
    CHECK(code_of(b) == response_code::ok);
    CHECK(code_of(b) == response_code::too_many_requests);
    CHECK(code_of(b) == response_code::too_many_requests);
    CHECK(g.live.gw->stats().account_rate_limited == 2);
    // Another account is not affected.
    CHECK(code_of(other) == response_code::ok);
    // A's own bucket is empty now: 12 again, from the per-connection limit.
    CHECK(code_of(a) == response_code::too_many_requests);
    CHECK(g.live.gw->stats().account_rate_limited == 2);
    // The sessions stay open.
    CHECK(a.close_cleanly());
    CHECK(b.close_cleanly());
    g.wait(session_a, 2);
    g.wait(session_b, 2);
    CHECK(g.obs->trace(session_a) == "opened(created) closed(client_closed,1000)");
    CHECK(g.obs->trace(session_b) == "opened(created) closed(client_closed,1000)");
}
