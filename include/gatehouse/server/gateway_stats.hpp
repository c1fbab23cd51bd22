// gateway_stats: the gateway's counters and gauges, each named once. A row of
// GATEHOUSE_GATEWAY_COUNTERS yields a field of gateway_stats, the atomic the
// gateway counts it in, its line in the snapshot and, when exposed, the
// Prometheus counter gatehouse_<field>_total of metrics_path (help text as
// given); GATEHOUSE_GATEWAY_OBSERVER_COUNTERS the same for the counters the
// observer's dispatcher keeps. Gauges are measured when the snapshot is taken (sizes of the
// registry, or atomics that go up and down): GATEHOUSE_GATEWAY_GAUGES yields
// their fields and exposition lines. Adding a counter is one row.
#pragma once

#include <cstddef>
#include <cstdint>

// X(field, exposed, help): monotonic, counted by the gateway.
#define GATEHOUSE_GATEWAY_COUNTERS(X)                                                                               \
    X(upgrades_accepted, false, "Upgrades accepted (metrics sinks see each result: upgrades_total).")               \
    X(upgrades_refused, false, "Upgrades refused.")                                                                 \
    X(frames_dropped, true, "Binary frames without a readable header (no reply possible).")                        \
    /* Reconnection (§13.4): sessions kept after their connection dropped. Events that will never reach their */   \
    /* parked session: evicted (queue full), refused (node budget), too old, or discarded with a session that */   \
    /* ended (window passed, revoked, disconnected, stop()). */                                                     \
    X(queued_events_dropped, true, "Events that never reached their parked session.")                              \
    X(queued_events_delivered, true, "Queued events delivered after a reconnection.")                              \
    X(sessions_resumed, true, "Parked sessions picked up by a reconnection.")                                      \
    X(sessions_expired, true, "Parked sessions whose reconnection window passed.")                                 \
    /* Server-to-client requests (§12.3). */                                                                        \
    X(client_calls_timed_out, true, "Server-to-client requests the client did not answer in time.")                \
    X(responses_unmatched, true, "Response frames from clients no pending request was waiting for.")               \
    /* Client-to-client routing (§12): a broadcast counts each copy. */                                             \
    X(peer_messages_forwarded, true, "Client-to-client messages handed to a target.")                              \
    /* Cluster (gateway_options::event_bus); zero without a bus. */                                                 \
    X(cluster_published, true, "Pushes and revocations handed to the cluster's event bus.")                        \
    X(cluster_publish_failed, true, "Of those, the ones the event bus could not take.")                            \
    X(cluster_received, true, "Messages from other nodes handled here.")                                           \
    X(cluster_sessions_taken, true, "Sessions taken over by a connection on another node.")                        \
    /* Event queue store (gateway_options::event_queue_store); zero without one. events_stored counts what the */   \
    /* store accepted (queued_events counts only this node's memory); a failed operation's events are counted */   \
    /* in queued_events_dropped, except a failed take's, which stay in the store until its retention passes. */    \
    X(events_stored, true, "Events for parked sessions handed to the event queue store.")                          \
    X(event_store_failures, true, "Event queue store operations that failed.")                                     \
    /* Liveness (gateway_options::session_refresh_interval): failures are retried; the connection stays. */          \
    X(session_refreshes, true, "Connected sessions refreshed in the session store.")                               \
    X(session_refresh_failures, true, "Session refreshes that failed (retried).")                                  \
    /* Abuse limits. */                                                                                             \
    X(account_rate_limited, true, "Requests refused by an account's message rate limit.")

// X(field, accessor, help): monotonic, counted by the lifecycle hooks' thread
// (gateway_options::observer; zero without one), read from its dispatcher.
#define GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(X)                                                     \
    X(observer_events, delivered, "Session lifecycle events handed to the observer.")              \
    X(observer_events_dropped, dropped, "Lifecycle events dropped: the observer's queue was full.") \
    X(observer_errors, errors, "Observer hooks that threw.")

// X(field, exposition name, help): measured when the snapshot is taken.
#define GATEHOUSE_GATEWAY_GAUGES(X)                                                                  \
    X(connections, "upgrading_or_open_connections",                                                  \
      "Connections counted against max_connections (upgrading or open).")                           \
    X(sessions, "sessions", "Sessions attached to a connection on this node.")                      \
    X(parked_sessions, "parked_sessions", "Sessions waiting for their client to reconnect.")        \
    X(queued_events, "queued_events", "Events held for parked sessions.")                           \
    X(client_calls_pending, "client_calls_pending", "Server-to-client requests awaiting the client's answer.")

namespace gatehouse::server {

/// Counters for tests and health checks. A snapshot; any thread. The help
/// text of each field is in the tables above.
struct gateway_stats {
#define GATEHOUSE_DETAIL_GAUGE_FIELD(field, name, help) std::size_t field = 0;
#define GATEHOUSE_DETAIL_COUNTER_FIELD(field, exposed, help) std::uint64_t field = 0;
    GATEHOUSE_GATEWAY_GAUGES(GATEHOUSE_DETAIL_GAUGE_FIELD)
#define GATEHOUSE_DETAIL_OBSERVER_FIELD(field, accessor, help) std::uint64_t field = 0;
    GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_DETAIL_COUNTER_FIELD)
    GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(GATEHOUSE_DETAIL_OBSERVER_FIELD)
#undef GATEHOUSE_DETAIL_GAUGE_FIELD
#undef GATEHOUSE_DETAIL_COUNTER_FIELD
#undef GATEHOUSE_DETAIL_OBSERVER_FIELD
};

}  // namespace gatehouse::server
