// How a client decides what a close means (PROTOCOL.md §13.2, §13.3, §18):
// the close code's classification, overridden by a disconnect notification
// carrying a reconnection token when one arrived before the close.
#pragma once

#include <gatehouse/protocol/close_code.hpp>
#include <gatehouse/protocol/limits.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::client {

/// The `connect.disconnect-notification` event.
struct disconnect_notification {
    std::string reason;
    bool reconnectable = false;
    std::string reconnection_token;  ///< a secret: never log it
    std::string expires_at;          ///< ISO-8601 text as sent
};

/// Parses the event's JSON payload; empty when it is not a disconnect
/// notification. Never throws.
inline std::optional<disconnect_notification> parse_disconnect_notification(std::string_view json) {
    const auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) return std::nullopt;
    const auto name = doc.find("eventName");
    if (name == doc.end() || !name->is_string() ||
        name->get_ref<const std::string&>() != protocol::event_names::disconnect_notification)
        return std::nullopt;
    disconnect_notification n;
    const auto text = [&](const char* key) {
        const auto it = doc.find(key);
        return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    n.reason = text("reason");
    n.reconnection_token = text("reconnectionToken");
    n.expires_at = text("expiresAt");
    const auto r = doc.find("reconnectable");
    n.reconnectable = r != doc.end() && r->is_boolean() && r->get<bool>();
    return n;
}

struct disconnect_info {
    std::string_view reason;  ///< one of protocol::disconnect_reason
    bool can_reconnect = false;
    std::string reconnection_token;  ///< empty unless a notification carried one
};

/// The client's verdict on a close with `close_code`, given the notification
/// received before it (if any).
inline disconnect_info classify_disconnect(std::uint16_t close_code,
                                           const std::optional<disconnect_notification>& notice) {
    const auto c = protocol::classify_close(close_code);
    disconnect_info info{c.reason, c.can_reconnect, {}};
    if (notice && !notice->reconnection_token.empty()) {
        info.can_reconnect = true;
        info.reconnection_token = notice->reconnection_token;
    }
    return info;
}

}  // namespace gatehouse::client
