#include <gatehouse/client/disconnect.hpp>

#include <doctest/doctest.h>

namespace c = gatehouse::client;
namespace p = gatehouse::protocol;

TEST_CASE("disconnect: notification parsed, token kept") {
    const auto n = c::parse_disconnect_notification(R"({"eventName":"connect.disconnect-notification",
        "reconnectionToken":"c2VjcmV0","expiresAt":"2026-03-02T15:01:21Z","reconnectable":true,"reason":"server_shutdown"})");
    REQUIRE(n.has_value());
    CHECK(n->reconnectable);
    CHECK(n->reason == "server_shutdown");
    CHECK(n->reconnection_token == "c2VjcmV0");
    CHECK(n->expires_at == "2026-03-02T15:01:21Z");

    CHECK_FALSE(c::parse_disconnect_notification(R"({"eventName":"system.notification"})").has_value());
    CHECK_FALSE(c::parse_disconnect_notification("not json").has_value());
    const auto odd = c::parse_disconnect_notification(
        R"({"eventName":"connect.disconnect-notification","reconnectable":"yes","reconnectionToken":5})");
    REQUIRE(odd.has_value());
    CHECK_FALSE(odd->reconnectable);  // wrong JSON types are not taken as true
    CHECK(odd->reconnection_token.empty());
}

TEST_CASE("disconnect: a notification with a token makes any close reconnectable") {
    auto info = c::classify_disconnect(1000, std::nullopt);
    CHECK(info.reason == p::disconnect_reason::client_disconnect);
    CHECK_FALSE(info.can_reconnect);

    info = c::classify_disconnect(4002, std::nullopt);
    CHECK(info.reason == p::disconnect_reason::kicked);
    CHECK_FALSE(info.can_reconnect);

    c::disconnect_notification n;
    n.reconnection_token = "tok";
    info = c::classify_disconnect(1000, n);
    CHECK(info.can_reconnect);
    CHECK(info.reconnection_token == "tok");

    n.reconnection_token.clear();
    info = c::classify_disconnect(1006, n);
    CHECK(info.reason == p::disconnect_reason::network_error);
    CHECK(info.can_reconnect);
    CHECK(info.reconnection_token.empty());
}
