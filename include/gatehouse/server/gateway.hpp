// gatehouse::server::gateway: authenticated binary WebSocket sessions
// (PROTOCOL.md, gatehouse profile §18).
//
// A host creates a gateway with its options, a token_validator and a
// session_store, registers endpoints, then either
//   - listens and runs the built-in WebSocket transport (websocketpp):
//     `listen()`, `run()`, `stop()`; or
//   - connects any other `transport` to `transport_side()` (the in-memory
//     transport of tests does this).
//
// COMPILING THE WEBSOCKET TRANSPORT. websocketpp's headers do not compile as
// C++20 with g++, so no public header includes them and `listen`/`run`/
// `stop` need one non-inline function,
// detail::make_websocket_transport: exactly one C++17 translation unit of the
// program must compile it, by including
//     #include <gatehouse/server/gateway_impl.hpp>
// (header-only mode), or, with GATEHOUSE_SEPARATE_COMPILATION, the
// translation unit that includes <gatehouse/impl/src.hpp> (which must then be
// C++17, or built with clang). Every other translation unit, C++17 or C++20,
// includes only <gatehouse/gatehouse.hpp> or this header. Forgetting it is a
// link error naming `gatehouse::server::detail::make_websocket_transport`.
//
// Upgrade decisions (PROTOCOL.md §2, §18). Path, connect rate, Origin,
// credentials and caps are checked synchronously while the upgrade request is
// being answered. The token_validator is called there too: a validator that
// completes inline (every built-in one; they need no I/O) decides the HTTP
// status (401 on failure). websocketpp 0.8 cannot defer the answer to an
// upgrade request (defer_http_response only applies to plain HTTP), so a
// validator that completes later is decided after the 101: until it does,
// nothing is routed (requests get 30), and a failure closes with 4001.
// `Authorization: Reconnect <token>` is never passed to the validator: the
// gateway checks its shape at the upgrade (401) and consumes it through the
// session_store after the 101 (4001 when unknown or used, 4002 when the
// session was revoked). Then the session is attached through the store
// (created, or loaded and updated when the credential's session key names an
// existing one) before the manifest is sent; store failures close with
// 4001/4002, or 1011 for backend errors. A new connection of a live session
// replaces the old one, which is closed with 4002. The session id is the
// credential's session key when that is lowercase GUID text, else a GUID
// derived from the account, the key and the salt (the same token keeps
// reaching the same session, §2.3), or a random one when there is no key.
//
// Executors: each connection's work is serialized. With one I/O thread that
// is the I/O thread itself (websocketpp configured without strands or locks);
// with more, a per-connection strand. Handlers run there; responders
// completed elsewhere post back to it.
//
// Threading: endpoint registration happens before listen()/the first
// connection. Every other public member is thread-safe and never blocks on
// network I/O; push and session calls post to the connections' executors.
#pragma once

#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/token_validator.hpp>
#include <gatehouse/detail/config.hpp>
#include <gatehouse/routing/endpoint.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/server/error.hpp>
#include <gatehouse/server/options.hpp>
#include <gatehouse/server/transport.hpp>
#include <gatehouse/session/session_store.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gatehouse::server {

namespace detail {
class gateway_core;

/// The network side the built-in transport provides.
class network_transport {
public:
    virtual ~network_transport() = default;
    virtual std::error_code listen() = 0;
    virtual std::uint16_t local_port() const = 0;
    virtual void run() = 0;
    virtual void stop() = 0;
};

/// Defined in gatehouse/impl/server_websocket.ipp; see "COMPILING THE
/// WEBSOCKET TRANSPORT" above.
std::unique_ptr<network_transport> make_websocket_transport(std::shared_ptr<gateway_core> core);
}  // namespace detail

/// Counters for tests and health checks. A snapshot; any thread.
struct gateway_stats {
    std::size_t connections = 0;   ///< upgrading or open
    std::size_t sessions = 0;      ///< attached
    std::uint64_t upgrades_accepted = 0;
    std::uint64_t upgrades_refused = 0;
    std::uint64_t frames_dropped = 0;  ///< unparsable frames (no reply possible)
};

class gateway {
public:
    /// Throws std::invalid_argument when the options are invalid (empty
    /// salt, zero limits, ...) or validator/store are missing.
    GATEHOUSE_DECL gateway(gateway_options options, std::shared_ptr<auth::token_validator> validator,
                           std::shared_ptr<session::session_store> store);
    GATEHOUSE_DECL ~gateway();
    gateway(const gateway&) = delete;
    gateway& operator=(const gateway&) = delete;

    // --- endpoints (before the first connection) -----------------------------
    GATEHOUSE_DECL routing::endpoint_registry& endpoints();
    GATEHOUSE_DECL const routing::endpoint& add_endpoint(routing::endpoint_options options, routing::handler fn);
    GATEHOUSE_DECL void add_routed_service(std::vector<routing::endpoint_options> endpoints,
                                           std::shared_ptr<routing::router> target);

    // --- built-in WebSocket transport (needs gateway_impl.hpp, see above) ----
    /// Opens the listening socket (TLS context too, when configured).
    /// Errors: listen_failed, tls_setup_failed. Call once.
    GATEHOUSE_DECL std::error_code listen();
    /// The bound port (useful with port 0). 0 before listen().
    GATEHOUSE_DECL std::uint16_t local_port() const;
    /// Runs the I/O threads (options.io_threads, the caller being one of
    /// them) until stop(). Requires a successful listen().
    GATEHOUSE_DECL void run();
    /// Any thread, also before run(): stops accepting (503), sends every
    /// attached session a reconnectable disconnect notification, closes every
    /// connection with 1001 and makes run() return once they are gone (at
    /// most handshake_timeout later).
    GATEHOUSE_DECL void stop();

    // --- other transports -----------------------------------------------------
    /// The callbacks a transport drives. The gateway must outlive the transport.
    GATEHOUSE_DECL transport_events& transport_side();

    // --- push (§9) ------------------------------------------------------------
    /// Sends event `event_name` with the members of `body` (an object or
    /// null) plus eventName/eventId/timestamp. Errors: event_name_missing,
    /// event_body_not_object, session_not_found.
    GATEHOUSE_DECL std::error_code push_to_session(std::string_view session_id, std::string_view event_name,
                                                   const nlohmann::json& body = nullptr);
    /// Returns how many sessions the event was queued for.
    GATEHOUSE_DECL std::size_t push_to_account(std::string_view account_id, std::string_view event_name,
                                               const nlohmann::json& body = nullptr);
    GATEHOUSE_DECL std::size_t push_to_group(std::string_view group, std::string_view event_name,
                                             const nlohmann::json& body = nullptr);
    GATEHOUSE_DECL std::size_t push_to_all(std::string_view event_name, const nlohmann::json& body = nullptr);

    // --- groups -----------------------------------------------------------------
    /// Membership lasts until leave_group or the session's last connection
    /// closes. Errors: invalid_group_name, session_not_found.
    GATEHOUSE_DECL std::error_code join_group(std::string_view session_id, std::string_view group);
    GATEHOUSE_DECL std::error_code leave_group(std::string_view session_id, std::string_view group);
    GATEHOUSE_DECL std::vector<std::string> group_members(std::string_view group) const;

    // --- sessions -----------------------------------------------------------------
    /// Replaces the session's roles and permissions, stores them, and sends a
    /// full new manifest with `reason` (§7.5). GUIDs that vanish stop routing
    /// (30) at once. Errors: session_not_found.
    GATEHOUSE_DECL std::error_code set_permissions(std::string_view session_id, std::vector<std::string> roles,
                                                   std::vector<std::string> permissions,
                                                   std::string_view reason = routing::manifest_reason::capabilities_updated);
    /// Closes the session's connection with `code` and `reason`.
    GATEHOUSE_DECL std::error_code disconnect(std::string_view session_id, std::uint16_t code,
                                              std::string_view reason);

    // --- revocation (§18) ---------------------------------------------------------
    /// Revokes the session in the store and closes its connection with 4002
    /// "kicked". `done` (optional) gets the store's result; any thread.
    GATEHOUSE_DECL void revoke_session(std::string_view session_id,
                                       std::function<void(std::error_code)> done = nullptr);
    /// Revokes every session of the account in the store and closes their
    /// connections on this node with 4002 "kicked". `done` gets the store's
    /// result and the number of sessions it revoked.
    GATEHOUSE_DECL void revoke_account(std::string_view account_id,
                                       std::function<void(std::error_code, std::size_t)> done = nullptr);
    /// Closes, with 4002 "kicked", every connection a revocation recorded in
    /// `list` applies to (token id, session key or account), as soon as the
    /// list reports it. Replaces a previous list; nullptr stops watching.
    /// (To refuse revoked credentials at the upgrade, also give the list to
    /// the validator_chain.)
    GATEHOUSE_DECL void watch_revocations(std::shared_ptr<auth::revocation_list> list);

    GATEHOUSE_DECL gateway_stats stats() const;
    GATEHOUSE_DECL const gateway_options& options() const noexcept;

private:
    std::shared_ptr<detail::gateway_core> core_;
    std::unique_ptr<detail::network_transport> network_;
};

}  // namespace gatehouse::server

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/impl/server_gateway.ipp>
#endif
