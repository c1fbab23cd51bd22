// Errors of the server layer (gateway, transport, responders), as std::error_code values.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::server {

/// Why a gateway operation did not happen. Zero is never used: a default
/// `std::error_code` means success.
enum class server_errc {
    session_not_found = 1,    ///< no live connection carries this session id
    already_answered,         ///< the responder was completed (or timed out) before
    connection_gone,          ///< the connection closed before the answer could be sent
    send_queue_overflow,      ///< the peer reads too slowly; the connection is closed with 4005
    not_running,              ///< the gateway is stopped or was never started
    invalid_group_name,       ///< group names are 1..128 bytes
    event_name_missing,       ///< an event needs a non-empty eventName
    event_body_not_object,    ///< an event body must be a JSON object (its fields join eventName)
    listen_failed,            ///< the listening socket could not be opened
    tls_setup_failed,         ///< certificate or key file could not be loaded
    transport_failure,        ///< the transport refused an operation (see logs)
    session_parked,           ///< the session has no connection now; it may still reconnect (§13.4)
    client_call_timeout,      ///< the client did not answer a server-to-client request in time (§12.3)
    client_call_disconnected, ///< the connection closed (or was replaced) before the client answered
    too_many_client_calls,    ///< the session has max_client_calls_per_session requests outstanding
    invalid_timeout,          ///< timeouts are 1 ms to 24 hours
    payload_too_large,        ///< the frame would exceed max_message_size
    invalid_limit,            ///< a presence limit must be 1 to max_presence_results
};

class server_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse.server"; }

    std::string message(int ev) const override {
        switch (static_cast<server_errc>(ev)) {
        case server_errc::session_not_found: return "no live connection for this session";
        case server_errc::already_answered: return "the request was already answered or timed out";
        case server_errc::connection_gone: return "the connection closed before the answer was sent";
        case server_errc::send_queue_overflow: return "send queue limit exceeded: connection closed as a slow consumer";
        case server_errc::not_running: return "the gateway is not running";
        case server_errc::invalid_group_name: return "group name must be 1 to 128 bytes";
        case server_errc::event_name_missing: return "event name must not be empty";
        case server_errc::event_body_not_object: return "event body must be a JSON object or null";
        case server_errc::listen_failed: return "could not listen on the configured address";
        case server_errc::tls_setup_failed: return "could not load the TLS certificate or key";
        case server_errc::transport_failure: return "the transport failed to perform the operation";
        case server_errc::session_parked: return "the session is waiting for its client to reconnect";
        case server_errc::client_call_timeout: return "the client did not answer the request in time";
        case server_errc::client_call_disconnected: return "the connection closed before the client answered";
        case server_errc::too_many_client_calls: return "too many requests to this client are outstanding";
        case server_errc::invalid_timeout: return "timeout must be between 1 millisecond and 24 hours";
        case server_errc::payload_too_large: return "payload too large for the gateway's max_message_size";
        case server_errc::invalid_limit: return "a presence query limit must be 1 to max_presence_results";
        }
        return "unknown gatehouse.server error";
    }
};

inline const std::error_category& server_category() noexcept {
    static const server_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(server_errc e) noexcept { return {static_cast<int>(e), server_category()}; }

}  // namespace gatehouse::server

template <>
struct std::is_error_code_enum<gatehouse::server::server_errc> : std::true_type {};
