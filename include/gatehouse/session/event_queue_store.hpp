// event_queue_store: the events held for sessions whose client is away.
//
// When a connection drops, the gateway keeps its session for
// reconnect_window ("parked", §13.4) and queues the events pushed to it
// meanwhile; the client gets them after its manifest when it comes back.
// Without an event_queue_store the queue lives in the parking node's memory:
// a client that comes back to another node gets it over the event bus, but
// only while the parking node lives. With one (the Redis store, shared by
// the nodes of a cluster), the queue lives in the store: whichever node the
// client comes back to takes it from there, even after the parking node
// died, and events pushed while no node holds the session are appended by
// the pusher.
//
// The protocol of a queue, per session:
//   park(node)    the session's connection ended on `node`: the queue is
//                 open (appends are accepted) for `retention`, with the
//                 events the connection could not send
//   append        an event for the parked session, from any node
//   take(node)    a connection for the session is attached on `node`: the
//                 queued events are returned (oldest first) and removed,
//                 and `node` is recorded as the session's holder
//   discard       the session ended (revoked): the queue is dropped
// While a node holds the session (after take, until it parks it again),
// park and append from anyone else are refused with the holder's id
// (queued == false), so an event racing a reconnection is never stranded
// in a queue nobody will take: its sender delivers it to the holder instead
// (the gateway publishes it on the event bus). Atomicity makes this exact:
// an append lands either before a take (and is returned by it) or after (and
// is refused).
//
// Bounds (event_queue_limits): per session at most max_events events and
// max_bytes bytes (an event that does not fit evicts the oldest: the newest
// state matters most to a game client); events older than max_age are not
// returned; a queue (and the holder record) expires `retention` after its
// last park or take. Memory is bounded by what is parked.
//
// Contract shared by every operation (as session_store's):
// - Each operation calls its completion exactly once, inline or later on
//   another thread; callers must not hold a lock a completion also takes.
// - Operations never throw on the runtime path and never block on I/O.
//   Calls are thread-safe; arguments are copied before the call returns.
// - Calls made one after another from one thread (or under one lock) take
//   effect in that order.
// Errors: invalid_session_id, invalid_node_id, invalid_queue_limits,
// event_too_large (append), not_found (append: no queue, the session is
// not parked anywhere or its retention passed), and the backend errors
// (backend_unavailable, timeout, bad_reply, backend_error, store_closed).
#pragma once

#include <gatehouse/session/error.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gatehouse::session {

struct event_queue_limits {
    std::size_t max_events = 1024;
    std::size_t max_bytes = 256 * 1024;
    std::chrono::milliseconds max_age{60000};
    std::chrono::milliseconds retention{300000};
};

/// What park and append did.
struct queue_status {
    /// The events are queued. False: a node holds the session (see holder).
    bool queued = false;
    /// When not queued: the node holding the session; deliver there.
    std::string holder;
    /// Events dropped to stay within the limits: the oldest ones evicted,
    /// or offered ones larger than max_bytes (park).
    std::size_t evicted = 0;
};

/// What take returned.
struct taken_events {
    std::vector<std::string> events;  ///< oldest first
    std::size_t dropped = 0;          ///< older than max_age (or unreadable): not returned
};

class event_queue_store {
public:
    template <class T>
    using completion = std::function<void(std::error_code, T)>;
    using done_completion = std::function<void(std::error_code)>;

    virtual ~event_queue_store() = default;

    /// Opens (or keeps open) the queue of a session whose connection ended
    /// on `node`, and appends `events` (oldest first). Refused (queued ==
    /// false, nothing stored) while another node holds the session.
    virtual void park(std::string_view session_id, std::string_view node, std::vector<std::string> events,
                      const event_queue_limits& limits, completion<queue_status> done) = 0;

    /// Appends one event to a parked session's queue. Refused (queued ==
    /// false) while a node holds the session. Errors: not_found when no
    /// queue is open, event_too_large.
    virtual void append(std::string_view session_id, std::string_view event, const event_queue_limits& limits,
                        completion<queue_status> done) = 0;

    /// Removes and returns the queued events (none is not an error) and
    /// records `node` as the session's holder for limits.retention.
    virtual void take(std::string_view session_id, std::string_view node, const event_queue_limits& limits,
                      completion<taken_events> done) = 0;

    /// Drops the session's queue and holder record (nothing there is not an error).
    virtual void discard(std::string_view session_id, done_completion done) = 0;
};

/// The argument checks every store makes (a default error_code when valid).
inline std::error_code validate_queue_limits(const event_queue_limits& limits) noexcept {
    if (limits.max_events == 0 || limits.max_bytes == 0 || limits.max_age.count() <= 0 ||
        limits.retention.count() <= 0)
        return session_errc::invalid_queue_limits;
    return {};
}
inline std::error_code validate_queue_node(std::string_view node) noexcept {
    if (node.empty() || node.size() > 64) return session_errc::invalid_node_id;
    return {};
}

}  // namespace gatehouse::session
