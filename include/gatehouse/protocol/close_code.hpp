// WebSocket close codes the protocol gives meaning to (PROTOCOL.md §13.2, §18),
// and how the reference TypeScript client classifies a close.
#pragma once

#include <cstdint>
#include <string_view>

namespace gatehouse::protocol {

enum class close_code : std::uint16_t {
    normal = 1000,            ///< the client asked to close
    going_away = 1001,        ///< server shutdown
    message_too_big = 1009,
    internal_error = 1011,
    session_expired = 4001,
    kicked = 4002,            ///< revoked, or replaced by a newer connection of the session
    slow_consumer = 4005,
    policy_violation = 4008,  ///< abuse
};

/// Disconnect reasons as the TypeScript client reports them.
namespace disconnect_reason {
inline constexpr std::string_view client_disconnect = "client_disconnect";
inline constexpr std::string_view server_close = "server_close";
inline constexpr std::string_view network_error = "network_error";
inline constexpr std::string_view session_expired = "session_expired";
inline constexpr std::string_view server_shutdown = "server_shutdown";
inline constexpr std::string_view kicked = "kicked";
}  // namespace disconnect_reason

struct close_classification {
    std::string_view reason;
    bool can_reconnect = false;
};

/// What the reference TypeScript client reports for a close code (before a
/// disconnect notification with a reconnection token forces can_reconnect).
/// A native client uses the same table to decide between retry and giving up.
constexpr close_classification classify_close(std::uint16_t code) noexcept {
    if (code == 1000) return {disconnect_reason::client_disconnect, false};
    if (code == 1001) return {disconnect_reason::server_shutdown, true};
    if (code == 4001) return {disconnect_reason::session_expired, false};
    if (code == 4002) return {disconnect_reason::kicked, false};
    if (code >= 4000 && code <= 4999) return {disconnect_reason::server_close, true};
    if (code >= 1002 && code <= 1015) return {disconnect_reason::network_error, true};
    return {disconnect_reason::server_close, false};
}

}  // namespace gatehouse::protocol
