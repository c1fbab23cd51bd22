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
// Server close codes: 1001 shutdown (reconnectable, with a token); 1009
// message too big; 1011 internal error (a store failure at attachment);
// 4001 session expired: invalid or consumed credentials, the token expired
// (after the validator's leeway) without a refresh, or the store's
// max_lifetime reached ("max lifetime reached"); 4002 kicked: revoked,
// replaced by a new connection of the session, by a newer session of the
// account (login policy replace_oldest: "replaced by a newer session") or
// by a connection on another node; 4005 slow consumer: the send queue
// (responses, events and pongs) exceeded max_send_queue_bytes; 4008 too many
// sessions for the account. Refused upgrades: 401, 403, 404, 426, 429
// (connect rate, or max_connections_per_address), 503 (node or account cap,
// stopping).
//
// Liveness: while a session has a connection here, its store record is
// touched every session_refresh_interval, so it never expires by idleness
// (gateway_options "session liveness"); the host sees sessions come and go
// through gateway_options::observer (session_observer.hpp).
//
// Executors: each connection's work is serialized. With one I/O thread that
// is the I/O thread itself (websocketpp configured without strands or locks);
// with more, a per-connection strand. Handlers run there; responders
// completed elsewhere post back to it.
//
// Reconnection (§13.4, §18, gateway_options "reconnection queue"): when a
// session's connection ends in a way its client may retry, the session is
// parked on this node for reconnect_window, keeping its groups and account;
// events pushed to it are queued (bounded by bytes, count, age, and a node
// budget; what does not fit is dropped and counted in gateway_stats). A
// reconnection within the window, with `Authorization: Reconnect <token>` or
// a credential naming the same session, resumes it: a manifest with reason
// `session_reconnected`, then the queued events in push order, then live
// ones. The window passing frees everything. MULTI-NODE: the queue lives in
// the memory of the node that held the connection; a client reconnecting to
// another node gets its session (through the shared session_store) but not
// the queued events, and groups are per node. Sharing queues between nodes
// is the cluster layer's job (an event_bus), not done here.
//
// Client-to-client routing (§12, gateway_options::peer_routing and
// peer_broadcast): peer GUIDs are random per connection (a reconnection gets
// a new one), drawn from OpenSSL's CSPRNG, and known to this node only
// (peer messages do not cross nodes).
//
// Observability (gateway_options "observability", server/metrics.hpp): with
// options.metrics set, the gateway reports upgrades (accepted, or refused by
// reason: on_upgrade, plain HTTP on the WebSocket path or elsewhere, a
// handshake that timed out), connections opened and closed (by the close
// code this side sent, else the peer's, 1006 for a drop), every WebSocket
// message and its bytes in and out, every response code sent, and the time
// from dispatching a request to its handler's answer (or timeout). Each is a
// virtual call on the I/O thread; prometheus_metrics counts it in a per-thread
// shard with a relaxed atomic add: no allocation, lock or formatting per
// message. The built-in transport serves GET metrics_path (loopback only by
// default; not for the public internet) and GET health_path (200 running,
// 503 stopping) on the listening port; metrics_exposition() gives hosts the
// same text. Log lines (options.log) and metrics never contain tokens, keys
// or reconnection tokens.
//
// Threading: endpoint registration happens before listen()/the first
// connection. Every other public member is thread-safe and never blocks on
// network I/O; push and session calls post to the connections' executors.
#pragma once

#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/token_validator.hpp>
#include <gatehouse/detail/config.hpp>
#include <gatehouse/protocol/guid.hpp>
#include <gatehouse/protocol/response_code.hpp>
#include <gatehouse/routing/endpoint.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/server/error.hpp>
#include <gatehouse/server/gateway_stats.hpp>
#include <gatehouse/server/options.hpp>
#include <gatehouse/server/session_presence.hpp>
#include <gatehouse/server/transport.hpp>
#include <gatehouse/session/session_store.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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

/// Defined in gatehouse/server/impl/websocket_transport.ipp; see "COMPILING THE
/// WEBSOCKET TRANSPORT" above.
std::unique_ptr<network_transport> make_websocket_transport(std::shared_ptr<gateway_core> core);
}  // namespace detail

/// The client's answer to gateway::call_client.
struct client_reply {
    protocol::response_code code = protocol::response_code::ok;
    bool binary = false;   ///< the response carried the Binary flag
    std::string payload;   ///< empty unless code is ok (§4.2)
};

/// How gateway::call_client frames its request (§12.3).
struct client_call_options {
    /// GUID field of the request: whatever the client and host agree it
    /// means (e.g. a GUID naming the client-side handler). Nil by default.
    protocol::guid service{};
    std::uint16_t channel = 0;
    /// Sets the Binary flag (the reference server always does; the payload
    /// is then opaque bytes rather than JSON).
    bool binary = false;
    /// 1 ms to 24 h; the reference server's backends wait 30 s (§14).
    std::chrono::milliseconds timeout{30000};
};

/// Completion of gateway::call_client: called exactly once.
using client_call_handler = std::function<void(std::error_code, client_reply)>;

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
    /// The callbacks a transport drives. The gateway must outlive the
    /// transport. With an event bus, also subscribes to it (as listen() does).
    GATEHOUSE_DECL transport_events& transport_side();

    // --- push (§9) ------------------------------------------------------------
    /// Sends event `event_name` with the members of `body` (an object or
    /// null) plus eventName/eventId/timestamp. Errors: event_name_missing,
    /// event_body_not_object, session_not_found (without an event bus; with
    /// one, a session not held here is handed to the bus for the node that
    /// holds it, and the call succeeds: stats().cluster_publish_failed counts
    /// what the bus could not take).
    ///
    /// With gateway_options::event_bus the account, group and all variants
    /// also reach the matching sessions of the other nodes (each connection
    /// once); the numbers they return count this node's sessions only.
    GATEHOUSE_DECL std::error_code push_to_session(std::string_view session_id, std::string_view event_name,
                                                   const nlohmann::json& body = nullptr);
    /// Returns how many sessions the event was queued for.
    GATEHOUSE_DECL std::size_t push_to_account(std::string_view account_id, std::string_view event_name,
                                               const nlohmann::json& body = nullptr);
    GATEHOUSE_DECL std::size_t push_to_group(std::string_view group, std::string_view event_name,
                                             const nlohmann::json& body = nullptr);
    GATEHOUSE_DECL std::size_t push_to_all(std::string_view event_name, const nlohmann::json& body = nullptr);
    //
    // Parked sessions (their connection dropped, reconnect_window not over;
    // see gateway_options "reconnection queue") are targets too: the event is
    // queued for them, bounded by bytes, count and age, and counts in the
    // returned numbers; push_to_session returns success. Events reach a
    // session in the order they were pushed, also across a reconnection.
    // An event already handed to the socket when the connection dropped is
    // not replayed: the protocol has no acknowledgement for events.
    // With an event bus and an event_queue_store, push_to_session also
    // reaches a session whose node died (its queue in the store waits for
    // it), and one caught moving: attached on another node that has not yet
    // declared it on the bus nor taken its queue; the push is tried again
    // there for about 2.5 s (stats().queued_events_dropped counts one that
    // still finds nobody).

    // --- server-to-client requests (§12.3) ------------------------------------
    /// Sends the session's client a request (31-byte header, no Event flag,
    /// a fresh unguessable message id) and waits for its response frame
    /// (flag 0x40, same message id). `done` is called exactly once:
    ///   - ({}, reply) with the client's response code and payload;
    ///   - client_call_timeout after options.timeout;
    ///   - client_call_disconnected when the connection closes or is
    ///     replaced first (also for a call made while it was closing);
    ///   - too_many_client_calls when the session already has
    ///     max_client_calls_per_session calls outstanding;
    ///   - not_running when the gateway stops, or when its transport is torn
    ///     down with the call pending.
    /// `done` runs on the connection's executor (an I/O thread), never inside
    /// call_client; in the teardown case, on the thread destroying the
    /// transport (for the built-in one: inside ~gateway, so a `done` that
    /// touches the gateway must not outlive it; normally the closes of
    /// stop() have completed every call on an I/O thread before). It must not
    /// block; it may call the gateway. An exception it
    /// throws is logged and swallowed. A null `done` ignores the answer.
    /// Errors returned here (and then `done` is never called):
    /// invalid_timeout, payload_too_large (31 + payload > max_message_size),
    /// session_not_found, session_parked (no connection now), not_running.
    /// Response frames that match no outstanding call (late, duplicate,
    /// foreign) are dropped and counted (gateway_stats::responses_unmatched).
    /// Any thread.
    GATEHOUSE_DECL std::error_code call_client(std::string_view session_id, std::string payload,
                                               client_call_handler done, client_call_options options = {});

    // --- groups -----------------------------------------------------------------
    /// Membership lasts until leave_group or the session ends: its
    /// connection closes for good, or it stays parked past reconnect_window
    /// (a parked session keeps its groups and may join and leave).
    /// Errors: invalid_group_name, session_not_found.
    GATEHOUSE_DECL std::error_code join_group(std::string_view session_id, std::string_view group);
    GATEHOUSE_DECL std::error_code leave_group(std::string_view session_id, std::string_view group);
    GATEHOUSE_DECL std::vector<std::string> group_members(std::string_view group) const;

    // --- presence ------------------------------------------------------------------
    /// This node's sessions of the account (connected and parked), at most
    /// `limit` (1 to options().max_presence_results; otherwise none). An
    /// unknown account has none. Any thread.
    GATEHOUSE_DECL std::vector<session_presence> local_sessions(std::string_view account_id,
                                                                std::size_t limit = 64) const;
    /// One session of this node; empty when this node has none by that id.
    GATEHOUSE_DECL std::optional<session_presence> local_session(std::string_view session_id) const;
    /// Whether the account has a session (connected or parked) on this node.
    GATEHOUSE_DECL bool online_here(std::string_view account_id) const;
    /// The account's sessions in the whole cluster, at most `limit`: this
    /// node's, then (with an event_bus) those the shared session store
    /// names a live node for (held). A node that died stops being reported
    /// once the bus's liveness timeout passed. An unknown account: an empty
    /// list. `done` runs on a store or bus completion thread, or inline
    /// (without a bus, or with an in-memory store). Errors: invalid_limit,
    /// and the store's or the bus's own (then the list holds this node's
    /// sessions only). Any thread.
    GATEHOUSE_DECL void account_presence(std::string_view account_id, presence_handler done, std::size_t limit = 64);
    /// Members of the group on this node (group_members, counted).
    GATEHOUSE_DECL std::size_t group_size(std::string_view group) const;

    // --- sessions -----------------------------------------------------------------
    /// Replaces the session's roles and permissions, stores them, and sends a
    /// full new manifest with `reason` (§7.5). GUIDs that vanish stop routing
    /// (30) at once. Errors: session_not_found, session_parked.
    GATEHOUSE_DECL std::error_code set_permissions(std::string_view session_id, std::vector<std::string> roles,
                                                   std::vector<std::string> permissions,
                                                   std::string_view reason = routing::manifest_reason::capabilities_updated);
    /// Closes the session's connection with `code` and `reason` (at most
    /// 123 bytes), after a `connect.disconnect-notification` whose `reason`
    /// is what the TS client reports for `code` (§13.2). When the client
    /// classifies `code` as reconnectable (1001, 1002-1015, 4000-4999 except
    /// 4001, 4002 and 4008 here) the notification carries a reconnection
    /// token and the session is parked; a client that reconnects within
    /// reconnect_window gets its session and the events queued meanwhile.
    /// A parked session is forgotten (its queue dropped). Errors:
    /// session_not_found.
    GATEHOUSE_DECL std::error_code disconnect(std::string_view session_id, std::uint16_t code,
                                              std::string_view reason);

    // --- revocation (§18) ---------------------------------------------------------
    /// Revokes the session in the store and closes its connection with 4002
    /// "kicked" (a parked session is forgotten, its queue dropped), on every
    /// node when there is an event bus. `done` (optional) gets the store's
    /// result; any thread.
    GATEHOUSE_DECL void revoke_session(std::string_view session_id,
                                       std::function<void(std::error_code)> done = nullptr);
    /// Revokes every session of the account in the store, closes their
    /// connections with 4002 "kicked" (on every node when there is an
    /// event bus) and forgets the parked ones. `done` gets the store's
    /// result and the number of sessions it revoked.
    GATEHOUSE_DECL void revoke_account(std::string_view account_id,
                                       std::function<void(std::error_code, std::size_t)> done = nullptr);
    /// Closes, with 4002 "kicked", every connection a revocation recorded in
    /// `list` applies to (token id, session key or account), as soon as the
    /// list reports it, and forgets the parked sessions it applies to. Replaces a previous list; nullptr stops watching.
    /// (To refuse revoked credentials at the upgrade, also give the list to
    /// the validator_chain.)
    GATEHOUSE_DECL void watch_revocations(std::shared_ptr<auth::revocation_list> list);

    GATEHOUSE_DECL gateway_stats stats() const;
    /// Appends what GET metrics_path serves (Prometheus text format 0.0.4:
    /// options.metrics' exposition, then the session, reconnection-queue and
    /// client-call values of stats()) to `out`, for hosts that serve it
    /// themselves (other transports, their own HTTP server). False, `out`
    /// untouched, when options.metrics is null or has no exposition. Any
    /// thread; allocates (a scrape, not the message path).
    GATEHOUSE_DECL bool metrics_exposition(std::string& out) const;
    GATEHOUSE_DECL const gateway_options& options() const noexcept;

private:
    /// Joins options().event_bus (once): at listen(), or at transport_side()
    /// for another transport.
    GATEHOUSE_DECL void subscribe_bus();

    std::shared_ptr<detail::gateway_core> core_;
    std::unique_ptr<detail::network_transport> network_;
    bool subscribed_ = false;  ///< to options().event_bus
};

}  // namespace gatehouse::server

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/server/impl/gateway.ipp>
#endif
