// Configuration of a gateway. Plain values with the defaults of PROTOCOL.md
// §14 and §18; validated once by the gateway's constructor, which throws
// std::invalid_argument with a clear message on a bad value.
#pragma once

#include <gatehouse/cluster/event_bus.hpp>
#include <gatehouse/session/event_queue_store.hpp>
#include <gatehouse/routing/salted_guid.hpp>
#include <gatehouse/server/metrics.hpp>
#include <gatehouse/server/session_observer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::server {

enum class log_level : std::uint8_t { debug, info, warning, error };

/// Receives the gateway's log lines. Called from I/O threads; must be
/// thread-safe and must not block. Lines never contain tokens or keys.
using log_hook = std::function<void(log_level, std::string_view)>;

struct gateway_options {
    // --- upgrade ---------------------------------------------------------
    /// Path of the WebSocket endpoint. Clients append `/connect` (§2.1).
    std::string path = "/connect";
    /// Accept `Authorization: ApiKey <key>` (the validator must handle
    /// credential_kind::api_key). Off: such a header is refused with 401.
    bool accept_api_keys = false;
    /// Accept `?token=<url-encoded token>` when there is no Authorization
    /// header (browser build of the TS client). Off by default: tokens in URLs
    /// end up in proxy logs.
    bool accept_query_token = false;
    /// Accept `Sec-WebSocket-Protocol: <marker>, <token>` (browsers). The
    /// answer names the marker only, never the token.
    bool accept_subprotocol_token = false;
    std::string subprotocol_marker = "bearer";
    /// When not empty, an upgrade whose Origin header is present and not in
    /// this list is refused with 403. Requests without Origin (non-browser
    /// clients) are not affected. Exact, case-sensitive match
    /// (`https://game.example`).
    std::vector<std::string> allowed_origins;
    /// Connections on this node (upgrading or open); beyond: 503.
    std::size_t max_connections = 10000;
    /// Live sessions of one account on this node. A new connection of a live
    /// session replaces its socket and does not count. Beyond the cap,
    /// account_session_policy decides.
    std::size_t max_sessions_per_account = 16;
    enum class session_policy : std::uint8_t {
        /// The newest is refused: 503 at the upgrade (or close 4008 when the
        /// validator answers after the upgrade).
        refuse_newest,
        /// The oldest live session of the account is closed with 4002
        /// ("replaced by a newer session", observer reason `replaced`) and
        /// the newcomer is attached: "one connection per user" with
        /// max_sessions_per_account = 1. With an event_bus the cap counts
        /// the account's sessions on every node (from the session store),
        /// and the oldest is closed wherever it is.
        replace_oldest,
    };
    session_policy account_session_policy = session_policy::refuse_newest;
    /// Connections (upgrading or open) from one source address; beyond: 429
    /// at the upgrade ("Too many connections from this address";
    /// upgrade_result::address_limit). Loopback peers (127.0.0.0/8, ::1: a
    /// reverse proxy on the same host, tests, benchmarks) are exempt unless
    /// limit_loopback_addresses: behind a proxy, every client has its address.
    std::size_t max_connections_per_address = 256;
    bool limit_loopback_addresses = false;
    /// Connect-rate limit per source address: a token bucket of
    /// `connect_burst` upgrades refilled at `connects_per_second`; beyond: 429.
    double connects_per_second = 10.0;
    std::size_t connect_burst = 20;

    // --- sessions and manifests --------------------------------------------
    /// Secret shared by all nodes; salts the service GUIDs (§6). Required.
    std::string guid_salt;
    routing::guid_input_order guid_order = routing::guid_input_order::bannou_compatible;
    /// Delay between the 101 having been written and the manifest (§7.3).
    std::chrono::milliseconds manifest_delay{20};
    /// Recorded in session records (`node_id`). With an event_bus the bus's
    /// node id is recorded instead, so that other nodes can ask the bus
    /// whether the node that held a session is still alive.
    std::string node_id = "gatehouse";

    // --- messages -----------------------------------------------------------
    /// Largest WebSocket message (header included), reassembled. The
    /// transport never buffers past it and closes with 1009.
    std::size_t max_message_size = 64 * 1024;
    /// Largest request payload answered normally; larger ones (up to
    /// max_message_size) are answered with 11 RequestTooLarge and the
    /// connection continues. 0 means max_message_size (only 1009 applies).
    std::size_t max_payload_size = 0;
    /// Requests on a higher channel are answered with 13.
    std::uint16_t max_channel = 1000;
    /// Token bucket per connection: refilled at messages_per_minute, holding
    /// up to message_burst; an empty bucket answers 12. Meta requests are not
    /// counted (§8.2).
    std::uint32_t messages_per_minute = 1000;
    std::uint32_t message_burst = 100;
    /// Token bucket per account, shared by all its sessions on this node
    /// (requests and peer messages, like the per-connection bucket; meta
    /// requests are not counted); an empty bucket answers 12. At least the
    /// per-connection values. While an account has a single connection on
    /// this node only the per-connection bucket is consulted (it is the
    /// tighter one), so a second connection finds the account's bucket
    /// refilled: across that moment the account can send up to
    /// message_burst + account_message_burst at once, never more.
    std::uint32_t account_messages_per_minute = 4000;
    std::uint32_t account_message_burst = 400;
    /// Requests being handled at once per connection (one per channel at most).
    std::size_t max_in_flight = 16;
    /// Requests waiting for their channel; beyond: 12.
    std::size_t max_queued_requests = 256;
    /// A handler that has not answered after this long is answered with 60.
    std::chrono::milliseconds handler_timeout{30000};
    /// Bytes queued for a connection and not yet written; beyond, the
    /// connection is closed with 4005 (slow consumer).
    std::size_t max_send_queue_bytes = 4 * 1024 * 1024;

    // --- lifecycle (§13, §18) --------------------------------------------------
    /// Server-initiated closes are preceded by a binary
    /// `connect.disconnect-notification` event. Reconnectable ones (shutdown,
    /// gateway::disconnect with a reconnectable code) carry a single-use
    /// reconnection token valid this long. It is also how long a session whose
    /// connection dropped is kept on this node ("parked") for its client to
    /// come back (see the reconnection queue below).
    std::chrono::milliseconds reconnect_window{300000};

    // --- session liveness --------------------------------------------------------
    /// How often each connected session's record is refreshed in the
    /// session_store (touch), so that it does not expire by idleness while
    /// its connection lives (silent or not). 0: a quarter of the store's
    /// idle_timeout (session_store::timing()), or one minute when the store
    /// does not say. A failed refresh is counted
    /// (gateway_stats::session_refresh_failures), logged, retried after 1 s,
    /// 2 s, 4 s... (at most this interval), and never closes the connection.
    /// A refresh the store answers `revoked` closes with 4002 "kicked"; one
    /// answered `expired` or `not_found` closes with 4001 "session expired"
    /// (observer reason max_lifetime or store_failure). Must be shorter than
    /// the store's idle_timeout.
    std::chrono::milliseconds session_refresh_interval{0};
    // A session also ends at the store's max_lifetime (created_at +
    // max_lifetime): its connection gets a `session_expired` notification
    // and close 4001 "max lifetime reached" (not reconnectable).

    // --- lifecycle hooks (session_observer.hpp) ------------------------------------
    /// Told when sessions open, park, resume, move to another node and
    /// close, on a thread of the gateway's own (see session_observer.hpp).
    /// Null: none, and no thread.
    std::shared_ptr<session_observer> observer;
    /// Events waiting for the observer; beyond, they are dropped and counted.
    std::size_t observer_queue_limit = 65536;

    // --- presence ---------------------------------------------------------------
    /// Largest `limit` a presence query accepts (gateway::local_sessions,
    /// account_presence).
    std::size_t max_presence_results = 1024;

    // --- reconnection queue (§13.4, §18) ---------------------------------------
    /// When an attached session's connection ends in a way its client may
    /// retry (a drop, a client close other than 1000, a server close the
    /// client classifies as reconnectable except 4008; never during stop()),
    /// the session stays on this node for reconnect_window: it keeps its
    /// groups and account, and events pushed to it are queued. A reconnection
    /// within the window (`Authorization: Reconnect <token>`, or a credential
    /// naming the same session) gets them, in push order, right after its
    /// manifest. The queue lives in this node's memory, or in
    /// event_queue_store when one is given (see below).
    ///
    /// Bytes of queued event frames per session; an event that does not fit
    /// evicts the oldest ones. 0 disables parking (and queueing) entirely.
    /// At most max_send_queue_bytes / 2: a replay is written all at once.
    std::size_t reconnect_queue_max_bytes = 256 * 1024;
    /// Events per session; beyond, the oldest is evicted.
    std::size_t reconnect_queue_max_events = 1024;
    /// Events older than this are never delivered (dropped on reconnection
    /// or when the queue is next touched).
    std::chrono::milliseconds reconnect_queue_max_age{60000};
    /// Bytes queued for all parked sessions of this node together; an event
    /// that would exceed it is dropped (not queued).
    std::size_t reconnect_queue_total_bytes = 64 * 1024 * 1024;

    // --- server-to-client requests (§12.3) --------------------------------------
    /// gateway::call_client requests awaiting the client's answer, per session;
    /// beyond: too_many_client_calls.
    std::size_t max_client_calls_per_session = 64;

    // --- client-to-client routing (§12) -------------------------------------------
    /// Relayed mode: every connection gets a random peer GUID, announced as
    /// `peerGuid` in its manifests; Client-flagged (0x20) frames addressed to
    /// a peer GUID of this node are forwarded unchanged, acknowledged with 0
    /// (unless Event-flagged) or answered 31. Off (External mode, the
    /// default): any Client-flagged frame is answered 40. Peer messages count
    /// against the rate limit and obey the size limits.
    bool peer_routing = false;
    /// With peer_routing: a Client-flagged frame to the broadcast GUID
    /// (ffffffff-...) is forwarded to every other session of this node, with
    /// no acknowledgement. Off: 40.
    bool peer_broadcast = false;
    /// Register the built-in `connect:/connect/refresh` endpoint: JSON
    /// `{"accessToken": "..."}` swaps in a new token for the same account
    /// before the current one expires (unrefreshed expiry closes with 4001).
    bool refresh_endpoint = true;

    // --- keep-alive (§14, §18) ------------------------------------------------
    /// A ping every ping_interval; no pong within pong_timeout drops the
    /// connection. 0 disables pings.
    std::chrono::milliseconds ping_interval{30000};
    std::chrono::milliseconds pong_timeout{10000};

    // --- transport (websocketpp) --------------------------------------------
    std::string listen_address = "127.0.0.1";
    /// 0: an ephemeral port (see gateway::local_port).
    std::uint16_t port = 9000;
    /// Threads running the I/O context in gateway::run. One thread uses a
    /// websocketpp configuration without strands or locks (DESIGN.md).
    std::size_t io_threads = 1;
    /// Both set: wss:// (TLS 1.2 minimum). Both empty: ws://.
    std::string tls_certificate_file;
    std::string tls_private_key_file;
    /// Upgrades not completed within this time are dropped.
    std::chrono::milliseconds handshake_timeout{5000};

    log_hook log;

    // --- observability -------------------------------------------------------
    /// Receives every upgrade, open, close (by close code), message and byte
    /// in and out, response code sent and handler latency (from dispatch to
    /// the responder's answer or the timeout), on the I/O threads (see
    /// metrics.hpp). Null: nothing is counted (one branch per event).
    /// `prometheus_metrics` counts in per-thread shards and renders GET
    /// metrics_path. The gateway holds it for its lifetime; one sink may
    /// serve several gateways (their counts add up).
    std::shared_ptr<metrics_sink> metrics;

    // --- cluster (several gateway nodes) ---------------------------------------
    /// This node's membership of a cluster (cluster/event_bus.hpp). With it:
    /// push_to_session reaches a session held by another node; push_to_account,
    /// push_to_group and push_to_all reach the matching sessions of every
    /// node, each connection once; revoke_session / revoke_account close the
    /// connections on every node (4002); one session has one socket across
    /// nodes (a connection for it on another node replaces this node's with
    /// 4002), and the events queued here for it while it was parked follow
    /// it there. The gateway declares on the bus the sessions it holds
    /// (parked ones included), their accounts and the groups its sessions
    /// joined, and subscribes at listen() (or transport_side()). Share the session_store between
    /// the nodes (e.g. the Redis store) so that every node knows every
    /// session and reconnection token. The bus must outlive the gateway
    /// (close it after destroying the gateway to leave the cluster). Null: a
    /// single node.
    std::shared_ptr<cluster::event_bus> event_bus;
    /// Where the events of parked sessions are queued
    /// (session/event_queue_store.hpp), bounded by the reconnect_queue_*
    /// options above (reconnect_queue_total_bytes aside: the store's own
    /// memory) and kept for reconnect_window. Share one between the nodes
    /// (the Redis store is one: pass the same redis_session_store as
    /// session_store and here): a client that comes back to any node gets
    /// its events, even when the node that parked it died, and an event
    /// pushed while no live node holds the session is queued by its pusher.
    /// The reconnected connection gets its manifest at once and the queued
    /// events right after it once the store answered, before anything pushed
    /// later. Null: this node's memory; with an event_bus, the queue follows
    /// a session taken by another node while this node lives.
    std::shared_ptr<session::event_queue_store> event_queue_store;
    /// Plain HTTP GET (or HEAD) on the listening port (built-in transport):
    /// the Prometheus text exposition of `metrics` (format 0.0.4, the
    /// sink's families followed by the reconnection-queue, session and
    /// client-call values of gateway_stats). Empty: disabled. Answered 404
    /// when `metrics` is null or has no exposition (render_exposition).
    ///
    /// NOT FOR THE PUBLIC INTERNET: the numbers describe load and abuse
    /// (refusals, limits hit) to whoever reads them. By default only
    /// loopback peers (127.0.0.0/8, ::1) may read it; see
    /// metrics_allowed_addresses. Anyone else gets the same 404 as an
    /// unknown path. The exposition never contains tokens, keys, session ids
    /// or accounts: only counts.
    std::string metrics_path = "/metrics";
    /// Who may read metrics_path. Empty (the default): loopback peers only.
    /// Otherwise exactly these remote addresses, as the transport reports
    /// them ("10.0.0.7"; IPv4-mapped IPv6 addresses as IPv4; "fd00::2"),
    /// loopback included only when listed ("127.0.0.1", "::1"). Behind a
    /// proxy the proxy's address is what counts.
    std::vector<std::string> metrics_allowed_addresses;
    /// Health check for load balancers, open to every peer: 200 with
    /// `{"status":"running"}` while the gateway serves, 503 with
    /// `{"status":"stopping"}` once stop() was called (until the listening
    /// socket closes, and on connections already accepted while draining).
    /// Empty: disabled. Must differ from `path` and `metrics_path`.
    std::string health_path = "/health";
};

}  // namespace gatehouse::server
