// The one-byte response code at offset 15 of a response header (PROTOCOL.md §5).
#pragma once

#include <cstdint>
#include <string_view>

namespace gatehouse::protocol {

/// Every code of the protocol. The underlying byte may hold values that are not
/// listed; `is_known_response_code` tells them apart.
enum class response_code : std::uint8_t {
    ok = 0,
    request_error = 10,
    request_too_large = 11,
    too_many_requests = 12,
    invalid_request_channel = 13,
    text_protocol_not_supported = 14,
    unauthorized = 20,
    service_not_found = 30,  ///< the GUID is not one issued to this session
    client_not_found = 31,
    message_not_found = 32,
    broadcast_not_allowed = 40,
    // 50..60: the backend (the host's handler or router) answered with an error.
    // Wire names: Service_BadRequest, Service_NotFound, ...
    backend_bad_request = 50,
    backend_not_found = 51,
    backend_unauthorized = 52,
    backend_conflict = 53,
    backend_internal_error = 60,
    shortcut_expired = 70,
    shortcut_target_not_found = 71,
    shortcut_revoked = 72,
};

constexpr std::uint8_t to_byte(response_code c) noexcept { return static_cast<std::uint8_t>(c); }

/// The name used by the reference implementation and its SDKs ("OK",
/// "ServiceNotFound", "Service_NotFound", ...); empty for an unknown code.
constexpr std::string_view response_code_name(response_code c) noexcept {
    switch (c) {
    case response_code::ok: return "OK";
    case response_code::request_error: return "RequestError";
    case response_code::request_too_large: return "RequestTooLarge";
    case response_code::too_many_requests: return "TooManyRequests";
    case response_code::invalid_request_channel: return "InvalidRequestChannel";
    case response_code::text_protocol_not_supported: return "TextProtocolNotSupported";
    case response_code::unauthorized: return "Unauthorized";
    case response_code::service_not_found: return "ServiceNotFound";
    case response_code::client_not_found: return "ClientNotFound";
    case response_code::message_not_found: return "MessageNotFound";
    case response_code::broadcast_not_allowed: return "BroadcastNotAllowed";
    case response_code::backend_bad_request: return "Service_BadRequest";
    case response_code::backend_not_found: return "Service_NotFound";
    case response_code::backend_unauthorized: return "Service_Unauthorized";
    case response_code::backend_conflict: return "Service_Conflict";
    case response_code::backend_internal_error: return "Service_InternalServerError";
    case response_code::shortcut_expired: return "ShortcutExpired";
    case response_code::shortcut_target_not_found: return "ShortcutTargetNotFound";
    case response_code::shortcut_revoked: return "ShortcutRevoked";
    }
    return {};
}

constexpr bool is_known_response_code(std::uint8_t value) noexcept {
    return !response_code_name(static_cast<response_code>(value)).empty();
}

/// HTTP status for a response code, as the protocol module of the TypeScript
/// SDK maps it (`mapToHttpStatus`). Unknown codes and 14 map to 500.
constexpr int to_http_status(response_code c) noexcept {
    switch (c) {
    case response_code::ok: return 200;
    case response_code::request_error:
    case response_code::request_too_large:
    case response_code::invalid_request_channel:
    case response_code::backend_bad_request: return 400;
    case response_code::too_many_requests: return 429;
    case response_code::unauthorized:
    case response_code::backend_unauthorized: return 401;
    case response_code::service_not_found:
    case response_code::client_not_found:
    case response_code::message_not_found:
    case response_code::backend_not_found:
    case response_code::shortcut_target_not_found: return 404;
    case response_code::broadcast_not_allowed: return 403;
    case response_code::backend_conflict: return 409;
    case response_code::shortcut_expired:
    case response_code::shortcut_revoked: return 410;
    default: return 500;
    }
}

/// Response code for an HTTP status a backend answered with, as the reference
/// server maps it: 2xx success statuses 200/201/202/204 are OK; 400 -> 50;
/// 401 and 403 -> 52; 404 -> 51; 409 -> 53; anything else (or 0, "no status")
/// -> 60.
constexpr response_code from_http_status(int status) noexcept {
    switch (status) {
    case 200:
    case 201:
    case 202:
    case 204: return response_code::ok;
    case 400: return response_code::backend_bad_request;
    case 401:
    case 403: return response_code::backend_unauthorized;
    case 404: return response_code::backend_not_found;
    case 409: return response_code::backend_conflict;
    default: return response_code::backend_internal_error;
    }
}

}  // namespace gatehouse::protocol
