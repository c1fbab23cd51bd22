// session_observer: how the host sees its players arrive, drop, come back
// and leave (gateway_options::observer).
//
// One session lifetime, as this interface reports it:
//
//     opened ─┬─► parked ─► resumed ─┬─► ... ─► closed
//             └─► resumed (takeover) ┘
//
// - opened: the session's lifetime begins (its first connection is
//   attached; `created` says whether the store created its record now).
// - parked: its connection ended in a way the client may retry (a drop, a
//   client close other than 1000, a reconnectable server close); the session
//   waits `until` for its client (gateway_options::reconnect_window).
// - resumed: the session has a connection again: after a park here, as a
//   new socket replacing its live one (takeover), or on this node after it
//   was held by another node (from_other_node: that node reported `moved`).
// - moved: another node took the session (one socket per session across a
//   cluster): its lifetime goes on there. This node reports nothing more.
// - closed: the lifetime is over, with a reason.
//
// Guarantees, per session: exactly one opened and at most one closed, in
// this order, with the events between them in the order they happened; a
// session that never got past its upgrade (refused, failed validation or
// attachment, dropped before it was attached) reports nothing. Across
// nodes, the node the session moves from reports `moved` (never `closed`)
// and the node it moves to reports `resumed` (never `opened`), as long as
// the session store is shared. Only a node that dies reports nothing more
// for its sessions.
//
// THREADING. Hooks run on one thread of the gateway's own (started with the
// gateway when an observer is set), one at a time, in the order above: never
// on an I/O thread. A hook that blocks delays only the hooks after it, never
// a connection; but events wait in a bounded queue
// (gateway_options::observer_queue_limit) and those beyond it are dropped
// and counted (gateway_stats::observer_events_dropped), so a hook should
// hand long work to the host's own threads. A hook may call the gateway
// (push, disconnect, presence, ...). An exception a hook throws is caught,
// counted (gateway_stats::observer_errors) and logged; the next event is
// delivered as usual. Events still queued when the gateway is destroyed are
// delivered before ~gateway returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace gatehouse::server {

/// Why a connection ended (parked) or a session ended (closed).
enum class session_end_reason : std::uint8_t {
    client_closed,             ///< the client sent a close frame (1000: it is done; other codes park)
    dropped,                   ///< the socket ended without a close frame (network, transport error)
    heartbeat_timeout,         ///< no pong within pong_timeout
    kicked,                    ///< gateway::disconnect by the host
    revoked,                   ///< revoke_session / revoke_account / watch_revocations, on any node
    token_expired,             ///< the access token expired without a refresh (4001)
    replaced,                  ///< login policy replace_oldest: a newer session of the account took its place (4002)
    reconnect_window_elapsed,  ///< parked, and its client did not come back in time
    node_stopping,             ///< gateway::stop()
    max_lifetime,              ///< the session store's max_lifetime passed (4001)
    store_failure,             ///< the session store lost the session (it no longer loads, e.g. expired in an outage)
    slow_consumer,             ///< the send queue limit was exceeded (4005)
    protocol_violation,        ///< the client broke a limit the gateway closes for (1009, 4008)
};

/// Stable lowercase name ("client_closed", "heartbeat_timeout", ...): for logs and labels.
constexpr std::string_view session_end_reason_name(session_end_reason r) noexcept {
    switch (r) {
    case session_end_reason::client_closed: return "client_closed";
    case session_end_reason::dropped: return "dropped";
    case session_end_reason::heartbeat_timeout: return "heartbeat_timeout";
    case session_end_reason::kicked: return "kicked";
    case session_end_reason::revoked: return "revoked";
    case session_end_reason::token_expired: return "token_expired";
    case session_end_reason::replaced: return "replaced";
    case session_end_reason::reconnect_window_elapsed: return "reconnect_window_elapsed";
    case session_end_reason::node_stopping: return "node_stopping";
    case session_end_reason::max_lifetime: return "max_lifetime";
    case session_end_reason::store_failure: return "store_failure";
    case session_end_reason::slow_consumer: return "slow_consumer";
    case session_end_reason::protocol_violation: return "protocol_violation";
    }
    return "unknown";
}

/// How a session got a connection back.
enum class session_resume_kind : std::uint8_t {
    after_park,       ///< its client came back within the reconnection window
    takeover,         ///< a new socket of the session replaced its live one on this node
    from_other_node,  ///< it was held (live or parked) by another node, which reported `moved`
};

constexpr std::string_view session_resume_kind_name(session_resume_kind k) noexcept {
    switch (k) {
    case session_resume_kind::after_park: return "after_park";
    case session_resume_kind::takeover: return "takeover";
    case session_resume_kind::from_other_node: return "from_other_node";
    }
    return "unknown";
}

/// What a hook is told. The views are valid during the call only.
struct session_event {
    std::string_view session_id;
    std::string_view account_id;
    /// This node: the event bus's node id with a bus, else gateway_options::node_id.
    std::string_view node_id;
    /// parked, closed: why. Other events: client_closed (meaningless).
    session_end_reason reason = session_end_reason::client_closed;
    /// parked, closed, moved: the close code of the connection that ended
    /// (the one this side sent, else the peer's; 1006 without a close
    /// frame); 0 when no connection ended with the event (a parked session
    /// whose window elapsed, or that was revoked or stopped while parked).
    std::uint16_t close_code = 0;
    /// parked: until when the session waits for its client.
    std::chrono::system_clock::time_point parked_until{};
    /// resumed: how.
    session_resume_kind resumed = session_resume_kind::after_park;
    /// opened: the session store created the record for this connection
    /// (false: the credential named a stored session whose last lifetime had ended).
    bool created = false;
    /// opened, resumed: the source address of the connection.
    std::string_view remote_address;
};

/// Implement the hooks you need; the others do nothing. See THREADING above.
class session_observer {
public:
    virtual ~session_observer() = default;
    virtual void on_opened(const session_event&) {}
    virtual void on_parked(const session_event&) {}
    virtual void on_resumed(const session_event&) {}
    virtual void on_moved(const session_event&) {}
    virtual void on_closed(const session_event&) {}
};

}  // namespace gatehouse::server
