// Errors of the native client.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::client {

enum class client_errc {
    manifest_not_json = 1,      ///< the manifest payload is not a JSON object
    manifest_wrong_event,       ///< eventName is not connect.capability-manifest
    manifest_missing_apis,      ///< availableApis is absent or not an array
    manifest_bad_session_id,    ///< sessionId is missing or not a GUID
    unknown_endpoint,           ///< no endpoint of that path in the current manifest
    call_timeout,               ///< no response within the call's timeout
    call_cancelled,             ///< the connection closed or the client is shutting down
    duplicate_message_id,       ///< a call with this message id is already pending
    too_many_pending_calls,     ///< the pending-call limit is reached
    not_connected,              ///< no open connection with a manifest
    already_connecting,         ///< async_connect while a connection is open or opening
    connect_failed,             ///< TCP/TLS connection or WebSocket handshake failed
    upgrade_unauthorized,       ///< the gateway answered the upgrade with 401
    upgrade_forbidden,          ///< ... with 403 (origin not allowed)
    upgrade_rate_limited,       ///< ... with 429 (connect-rate limit)
    upgrade_unavailable,        ///< ... with 503 (connection cap)
    upgrade_refused,            ///< ... with another non-101 status
    manifest_timeout,           ///< connected, but no capability manifest in time
    connection_closed,          ///< the connection closed before the operation completed
};

class client_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse.client"; }
    std::string message(int ev) const override {
        switch (static_cast<client_errc>(ev)) {
        case client_errc::manifest_not_json: return "capability manifest is not a JSON object";
        case client_errc::manifest_wrong_event: return "event is not connect.capability-manifest";
        case client_errc::manifest_missing_apis: return "capability manifest has no availableApis array";
        case client_errc::manifest_bad_session_id: return "capability manifest has no valid sessionId";
        case client_errc::unknown_endpoint: return "endpoint is not in the current capability manifest";
        case client_errc::call_timeout: return "no response within the call's timeout";
        case client_errc::call_cancelled: return "call cancelled: connection closed or client stopping";
        case client_errc::duplicate_message_id: return "a call with this message id is already pending";
        case client_errc::too_many_pending_calls: return "too many calls pending on this connection";
        case client_errc::not_connected: return "not connected";
        case client_errc::already_connecting: return "already connected or connecting";
        case client_errc::connect_failed: return "connection or WebSocket handshake failed";
        case client_errc::upgrade_unauthorized: return "upgrade refused: 401 unauthorized (bad or missing credentials)";
        case client_errc::upgrade_forbidden: return "upgrade refused: 403 forbidden (origin not allowed)";
        case client_errc::upgrade_rate_limited: return "upgrade refused: 429 too many connection attempts";
        case client_errc::upgrade_unavailable: return "upgrade refused: 503 server at capacity";
        case client_errc::upgrade_refused: return "upgrade refused with an unexpected HTTP status";
        case client_errc::manifest_timeout: return "no capability manifest received in time";
        case client_errc::connection_closed: return "connection closed";
        }
        return "unknown gatehouse.client error";
    }
};

inline const std::error_category& client_category() noexcept {
    static const client_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(client_errc e) noexcept { return {static_cast<int>(e), client_category()}; }

/// The error for an upgrade answered with HTTP `status` instead of 101.
inline client_errc upgrade_error_for_status(int status) noexcept {
    switch (status) {
    case 401: return client_errc::upgrade_unauthorized;
    case 403: return client_errc::upgrade_forbidden;
    case 429: return client_errc::upgrade_rate_limited;
    case 503: return client_errc::upgrade_unavailable;
    default: return client_errc::upgrade_refused;
    }
}

/// Whether trying again later can succeed (429, 503, network failures) as
/// opposed to an answer that will not change (401, 403).
inline bool is_retryable(std::error_code ec) noexcept {
    if (ec.category() != client_category()) return true;
    switch (static_cast<client_errc>(ec.value())) {
    case client_errc::upgrade_unauthorized:
    case client_errc::upgrade_forbidden:
    case client_errc::manifest_not_json:
    case client_errc::manifest_wrong_event:
    case client_errc::manifest_missing_apis:
    case client_errc::manifest_bad_session_id: return false;
    default: return true;
    }
}

}  // namespace gatehouse::client

template <>
struct std::is_error_code_enum<gatehouse::client::client_errc> : std::true_type {};
