// event_bus: how the gateway nodes of one cluster reach each other's
// connections. A small asynchronous interface with two implementations:
// memory_event_bus (several nodes in one process; the default for a single
// process, and for tests) and adapters::redis::redis_event_bus (nodes in
// separate processes sharing one Redis). Run the conformance kit
// (gatehouse/testing/event_bus_conformance.hpp) against your own bus.
//
// One event_bus object is one node's membership of the cluster: it is
// constructed with the node's id, receives the messages addressed to that
// node, and publishes on its behalf.
//
// Addressing and interest. A node declares what it has locally: the
// sessions it holds a connection for, the accounts of those sessions, and
// the groups its local sessions are members of. A message reaches exactly
// the nodes that declared its target, never the publisher itself (it handles
// its own connections directly), and never a node that did not declare it:
//   to_node         the node with that id
//   to_session      the one node that declared the session (the latest
//   revoke_session  declaration wins: see session_taken)
//   to_account      every node that declared the account
//   revoke_account
//   to_group        every node that declared the group
//   to_all          every node
//   session_taken   sent by the bus to the previous holder when another node
//                   declares a session: close the old socket (one socket per
//                   session across nodes); the session's interest is
//                   withdrawn locally by the bus
// The payload is opaque bytes (the gateway's pushed event, say); the bus
// never parses it.
//
// Delivery. Each message is handed to a node's handler at most once:
// duplicates (a retry, a re-read after a reconnect) are recognised by
// (origin, message id) within a bounded window and counted, not delivered.
// Bytes that are not an envelope of this format version are counted and
// dropped, never delivered. Whether a message survives a backend outage
// depends on the implementation and the kind (see the implementation).
//
// Contract shared by every operation:
// - Each operation calls its completion exactly once, never inline within
//   the call: with a default std::error_code (and the result) on success, or
//   with a cluster_errc. Completions may be empty.
// - Operations are thread-safe, never throw on the runtime path, never block
//   on I/O. string_view arguments are copied before the call returns.
// - The handler and completions run on the executor given to the bus (for
//   the built-in buses: a strand of it), one at a time, never concurrently
//   with each other for one bus. A handler must not block; the views of a
//   bus_message are valid during the call only.
// - Lifetime: the bus must outlive its calls' completions, except that a bus
//   closed with operations pending completes them with bus_closed (as long as
//   its executor still runs). Once close() has run on the bus's executor the
//   handler is not called again; called from another thread, close() returns
//   at once and a handler call already under way may still finish, so a
//   handler should share ownership of what it touches (capture a
//   shared_ptr) rather than point into an object about to be destroyed.
#pragma once

#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <system_error>
#include <utility>

namespace gatehouse::cluster {

/// What a node declares to receive messages addressed to it.
enum class interest_kind : std::uint8_t {
    session = 1,  ///< to_session, revoke_session, session_taken
    account = 2,  ///< to_account, revoke_account
    group = 3,    ///< to_group
};

/// A message as a node's handler sees it. Views valid during the call only.
struct bus_message {
    message_kind kind = message_kind::to_all;
    std::string_view target{};   ///< node id, session id, account id or group name; empty for to_all
    std::string_view payload{};
    std::string_view origin{};   ///< the publishing node's id
    std::uint64_t message_id = 0;
};

/// Counters, for tests and health checks. A snapshot; any thread.
struct event_bus_stats {
    std::uint64_t published = 0;             ///< publish calls that succeeded
    std::uint64_t publish_failed = 0;        ///< publish calls completed with an error
    std::uint64_t delivered = 0;             ///< handler calls
    std::uint64_t duplicates = 0;            ///< messages received again within the window, not delivered
    std::uint64_t malformed = 0;             ///< bytes that are not a valid envelope (any reason but version)
    std::uint64_t incompatible_version = 0;  ///< envelopes of an older or newer format version
    std::uint64_t not_interested = 0;        ///< valid, but for a target this node does not (any longer) declare
    std::uint64_t own_messages = 0;          ///< the node's own publications echoed by the backend, dropped
    std::uint64_t no_handler = 0;            ///< valid messages received before subscribe, dropped
    std::uint64_t reconnects = 0;            ///< backend connections re-established after a loss
    std::uint64_t bad_replies = 0;           ///< backend replies of an unexpected shape, ignored
    /// The node found its own liveness record expired (a stalled backend or
    /// host) and registered its declarations again.
    std::uint64_t heartbeat_lapses = 0;
    /// Times the node found that targeted messages addressed to it may have
    /// been lost in the backend before it read them: its queue was trimmed
    /// past its read position (it fell more than the queue's cap behind), or
    /// the queue vanished (expired during a long absence, deleted, or lost in
    /// a backend restart without persistence) after the node had read from
    /// it. One count per discovery, not per message. Always 0 for
    /// memory_event_bus, which cannot lose a message.
    std::uint64_t stream_gaps = 0;
    /// Messages known to be lost in those gaps (trimmed before they were
    /// read), when the backend can tell: a lower bound, as the content of a
    /// vanished queue is unknown (see the implementation).
    std::uint64_t stream_messages_lost = 0;
};

class event_bus {
public:
    using message_handler = std::function<void(const bus_message&)>;
    using done_completion = std::function<void(std::error_code)>;
    /// `nodes`: how many other nodes the message was handed to (0 is not an
    /// error: nobody declared the target).
    using publish_completion = std::function<void(std::error_code, std::size_t nodes)>;
    using alive_completion = std::function<void(std::error_code, bool alive)>;

    virtual ~event_bus() = default;

    /// This node's id (fixed at construction).
    virtual std::string_view node_id() const noexcept = 0;

    /// Installs the handler (replacing a previous one) and starts receiving.
    /// Completes once messages published from then on will be received. A
    /// bus whose backend is down completes with bus_unavailable and keeps
    /// trying: receiving starts when the backend is back.
    virtual void subscribe(message_handler handler, done_completion done) = 0;

    /// Publishes `payload` to `target` (see the addressing table above).
    /// Errors: invalid_target, payload_too_large, kind_not_publishable
    /// (session_taken), bus_unavailable, timeout, backend_error, bus_closed.
    virtual void publish(message_kind kind, std::string_view target, std::string_view payload,
                         publish_completion done) = 0;

    /// Declares that this node holds `name` (a session, an account, a group).
    /// Idempotent. The declaration is kept locally and survives backend
    /// outages (it is registered again on reconnection); an error says only
    /// that it is not in effect yet. Errors: invalid_target, bus_unavailable,
    /// timeout, backend_error, bus_closed.
    virtual void declare_interest(interest_kind kind, std::string_view name, done_completion done) = 0;

    /// Withdraws a declaration (no error when there was none). A session's
    /// directory entry is removed only while it still names this node.
    virtual void withdraw_interest(interest_kind kind, std::string_view name, done_completion done) = 0;

    /// Whether a node is a live member of the cluster (this one included).
    /// A node that crashed stops being alive after the implementation's
    /// liveness timeout. Errors: invalid_node_id, bus_unavailable, timeout,
    /// backend_error, bus_closed.
    virtual void node_alive(std::string_view node, alive_completion done) = 0;

    virtual event_bus_stats stats() const = 0;

    /// Leaves the cluster: withdraws every declaration (best effort), stops
    /// receiving, completes pending operations with bus_closed. Idempotent.
    virtual void close() = 0;

    // --- conveniences ----------------------------------------------------------
    void publish_to_node(std::string_view node, std::string_view payload, publish_completion done = nullptr) {
        publish(message_kind::to_node, node, payload, std::move(done));
    }
    void publish_to_session(std::string_view session_id, std::string_view payload, publish_completion done = nullptr) {
        publish(message_kind::to_session, session_id, payload, std::move(done));
    }
    void publish_to_account(std::string_view account_id, std::string_view payload, publish_completion done = nullptr) {
        publish(message_kind::to_account, account_id, payload, std::move(done));
    }
    void publish_to_group(std::string_view group, std::string_view payload, publish_completion done = nullptr) {
        publish(message_kind::to_group, group, payload, std::move(done));
    }
    void publish_to_all(std::string_view payload, publish_completion done = nullptr) {
        publish(message_kind::to_all, {}, payload, std::move(done));
    }
    /// Revocation notices carry an optional reason in the payload.
    void revoke_session(std::string_view session_id, std::string_view reason = {}, publish_completion done = nullptr) {
        publish(message_kind::revoke_session, session_id, reason, std::move(done));
    }
    void revoke_account(std::string_view account_id, std::string_view reason = {}, publish_completion done = nullptr) {
        publish(message_kind::revoke_account, account_id, reason, std::move(done));
    }
};

/// The interest a message kind needs, or none for to_node / to_all.
constexpr bool interest_of(message_kind kind, interest_kind& out) noexcept {
    switch (kind) {
    case message_kind::to_session:
    case message_kind::revoke_session:
    case message_kind::session_taken: out = interest_kind::session; return true;
    case message_kind::to_account:
    case message_kind::revoke_account: out = interest_kind::account; return true;
    case message_kind::to_group: out = interest_kind::group; return true;
    case message_kind::to_node:
    case message_kind::to_all: return false;
    }
    return false;
}

}  // namespace gatehouse::cluster
