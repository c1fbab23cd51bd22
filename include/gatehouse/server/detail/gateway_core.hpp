// The gateway's state: gateway_core, one per gateway, which composes the
// parts (the session registry, detail/session_registry.hpp; the peer table;
// the per-address counts; the timers) and holds parking, the cluster link
// and the counters, with the small types they share. One connection's state
// is detail/connection_state.hpp. The member functions are defined next to
// their part, in gatehouse/server/impl/: gateway_upgrade.ipp,
// gateway_registry.ipp, gateway_parking.ipp, gateway_cluster.ipp,
// gateway_metrics.ipp.
#pragma once

#include <gatehouse/auth/authorization_header.hpp>
#include <gatehouse/detail/random.hpp>
#include <gatehouse/protocol/close_code.hpp>
#include <gatehouse/protocol/header.hpp>
#include <gatehouse/protocol/meta.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/routing/meta.hpp>
#include <gatehouse/server/deadline_queue.hpp>
#include <gatehouse/server/detail/credentials.hpp>
#include <gatehouse/server/detail/dispatcher.hpp>
#include <gatehouse/server/detail/event_queue.hpp>
#include <gatehouse/server/detail/peer_directory.hpp>
#include <gatehouse/server/detail/rate_limits.hpp>
#include <gatehouse/server/detail/session_events.hpp>
#include <gatehouse/server/detail/session_registry.hpp>
#include <gatehouse/server/detail/wake_scheduler.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/session/session.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

class connection_state;

using steady = std::chrono::steady_clock;

/// The result of a validator that did not answer during the upgrade.
struct validation_slot {
    std::mutex mutex;
    bool done = false;
    std::error_code error;
    auth::identity who;
    std::weak_ptr<connection_state> waiting;
};

class gateway_core;

/// The gateway's session registry (detail/session_registry.hpp) and the
/// proof of its lock that the `_locked` functions take.
using registry = session_registry<connection_state>;
using registry_lock = registry::lock_type;

/// The host's side of one server-to-client request. Completed exactly once:
/// the destructor reports not_running when nothing else did (the transport
/// dropped the posted work, or the connection state died with it pending).
class client_call final {
public:
    explicit client_call(client_call_handler done) noexcept : done_(std::move(done)) {}
    client_call(const client_call&) = delete;
    client_call& operator=(const client_call&) = delete;
    ~client_call() { complete(server_errc::not_running, {}); }

    /// False if it was completed before.
    bool complete(std::error_code ec, client_reply reply) noexcept {
        if (finished_) return false;
        finished_ = true;
        auto done = std::move(done_);
        done_ = nullptr;
        if (!done) return true;
        try {
            done(ec, std::move(reply));
        } catch (...) {
            threw = true;
        }
        return true;
    }
    bool threw = false;

private:
    client_call_handler done_;
    bool finished_ = false;
};

/// Fills `out` from the library's random source (gatehouse/detail/random.hpp:
/// OpenSSL's CSPRNG, failing closed). Peer GUIDs and server-to-client message
/// ids must not be predictable from ids the client has seen.
inline void secure_random(std::uint8_t* out, std::size_t size) { gatehouse::detail::random_bytes_fast(out, size); }

inline protocol::guid random_peer_guid() {
    protocol::guid g;
    do {
        secure_random(g.bytes.data(), g.bytes.size());
        g.bytes[6] = static_cast<std::uint8_t>((g.bytes[6] & 0x0f) | 0x40);
        g.bytes[8] = static_cast<std::uint8_t>((g.bytes[8] & 0x3f) | 0x80);
    } while (g.is_nil() || g.is_broadcast());
    return g;
}

/// Why gateway_core::kick closes sessions.
enum class kick_kind : std::uint8_t {
    revoked,   ///< 4002 "kicked" (revocation on any node)
    replaced,  ///< 4002 "replaced by a newer session" (login policy replace_oldest)
    moved,     ///< 4002 "replaced by a connection on another node" (session_taken)
};

/// How a connection of an attached session ended, for the observer.
struct session_ending {
    session_end_reason reason = session_end_reason::client_closed;
    std::uint16_t close_code = 0;
    bool moved = false;  ///< another node took the session: `moved`, not `closed`
};

/// Who a session is, for revocation matching (live or parked).
struct session_keys {
    const std::string& session_id;
    const std::string& account_id;
    const std::string& token_id;
    const std::string& session_key;
};

class gateway_core final : public transport_events, public std::enable_shared_from_this<gateway_core> {
public:
    gateway_core(gateway_options opts, std::shared_ptr<auth::token_validator> v,
                 std::shared_ptr<session::session_store> s)
        : options(std::move(opts)), validator(std::move(v)), store(std::move(s)) {}

    upgrade_decision on_upgrade(const upgrade_request& request) override;
    void on_open(const std::shared_ptr<transport_connection>& connection) override;
    void on_message(const std::shared_ptr<transport_connection>& connection, frame_kind kind,
                    protocol::bytes_view bytes) override;
    void on_close(const std::shared_ptr<transport_connection>& connection, std::uint16_t code) override;

    void log(log_level level, std::string_view line) const {
        if (options.log) options.log(level, line);
    }
    void count_upgrade(upgrade_result r) const noexcept {
        if (metrics) metrics->on_upgrade(r);
    }

    gateway_stats snapshot() const;
    /// GET metrics_path: false when there is no sink or it has no exposition.
    bool render_metrics(std::string& out) const;
    /// Whether `remote` may read metrics_path: loopback, or the allow-list when set.
    bool metrics_allowed(std::string_view remote) const;

    /// What an attached connection brings to register_session.
    struct attach_facts {
        bool created = false;       ///< the store created the record for it
        std::string previous_node;  ///< the record's node_id before this attach ("" none)
    };
    /// Registers an attached session; returns the connection it replaces (if
    /// any) through `replaced`; when the session was parked, sets `resumed`
    /// and hands over the events queued for it. Sessions the login policy
    /// replace_oldest closes for it are added to `displaced`. Reports opened
    /// or resumed to the observer. False when the account is at its cap.
    bool register_session(const std::shared_ptr<connection_state>& connection, const attach_facts& facts,
                          std::shared_ptr<connection_state>& replaced, bool& resumed, event_queue& queued,
                          std::vector<std::shared_ptr<connection_state>>& displaced);
    /// The connection is gone: the session leaves the registry, or is parked
    /// when `park` (with `held`, the events it could not send). Reports
    /// parked, moved or closed (`ending`) to the observer.
    void unregister(connection_state& connection, bool park, event_queue held, const session_ending& ending);

    // --- lifecycle hooks (options.observer) ---
    /// Null without an observer.
    std::unique_ptr<session_event_dispatcher> observer_events;
    /// Hands one event to the observer thread (nothing without an observer).
    /// Called under the registry lock, where the transitions happen, so
    /// that a session's events keep their order.
    void emit(session_event_kind kind, const std::string& session_id, const std::string& account_id,
              session_ending ending = {}, std::string remote = {}) const {
        if (!observer_events) return;
        queued_session_event e;
        e.kind = kind;
        e.session_id = session_id;
        e.account_id = account_id;
        e.reason = ending.reason;
        e.close_code = ending.close_code;
        e.remote_address = std::move(remote);
        observer_events->post(std::move(e));
    }
    void emit(queued_session_event e) const {
        if (observer_events) observer_events->post(std::move(e));
    }
    /// The session's lifetime ended on this node: the store's record stops
    /// naming it (so another node attaching it later opens a new lifetime,
    /// and presence stops listing it).
    void release_in_store(const std::string& session_id);

    // --- liveness ---
    static std::chrono::milliseconds pick_refresh_interval(const gateway_options& o, const session::session_timing& t) {
        if (o.session_refresh_interval.count() > 0) return o.session_refresh_interval;
        if (t.idle_timeout.count() > 0) return std::max(std::chrono::milliseconds(1), t.idle_timeout / 4);
        return std::chrono::minutes(1);
    }
    /// steady ms of the last refresh failure logged (one line a second at most).
    std::atomic<std::int64_t> refresh_failure_logged{0};
    void refresh_failed(const std::error_code& ec);

    // --- sessions (the registry's own operations are in `sessions`); the
    // `_locked` functions take the registry lock as proof ---
    /// Adds the live connection of `session_id` to `live`, or queues `event`
    /// when the session is parked; returns 1 for either, 0 when unknown.
    std::size_t target_locked(const registry_lock& reg, const std::string& session_id, const queued_event& event,
                              std::vector<std::shared_ptr<connection_state>>& live);
    /// An event a connection could not send (it closed): to the session's
    /// parked queue or its live successor, else dropped.
    void reroute_event(const std::string& session_id, const connection_state* from, queued_event event);
    /// Queues `event` for a parked session.
    void queue_parked_locked(const registry_lock& reg, parked_session& parked, queued_event event,
                             steady::time_point now);
    /// Drops events older than reconnect_queue_max_age.
    void prune_parked_locked(const registry_lock& reg, parked_session& parked, steady::time_point now);
    /// Forgets a parked session: its queue, groups and account; reports
    /// closed (`reason`), or moved.
    void forget_parked_locked(const registry_lock& reg, std::unordered_map<std::string, parked_session>::iterator it,
                              session_end_reason reason, bool moved = false);
    /// The session leaves the registry's accounts and groups and the
    /// cluster's interest lists.
    void forget_session_locked(const registry_lock& reg, const std::string& session_id, const std::string& account_id);
    /// What forget_memberships reports emptied: withdrawn on the bus.
    auto withdraw_interest() {
        return [this](membership kind, const std::string& name) {
            bus_interest(kind == membership::account ? cluster::interest_kind::account : cluster::interest_kind::group,
                         name, false);
        };
    }
    /// Arms the parked session's timer for `wake`, if earlier than the armed one.
    void arm_parked_locked(const registry_lock& reg, parked_session& parked, steady::time_point wake);
    void parked_timer(const std::string& session_id, steady::time_point wake);

    /// Posts a close to every open connection (shutdown).
    void close_all(std::uint16_t code, std::string_view reason);
    /// Posts 4002 to every attached connection `matches` selects and
    /// forgets every parked session it selects (the predicate gets
    /// session_keys and runs under the registry lock); returns how many.
    /// With `handed_over`, the events queued for the forgotten parked
    /// sessions are moved there (in push order) instead of being dropped.
    template <class Predicate>
    std::size_t kick(Predicate matches, kick_kind kind = kick_kind::revoked,
                     std::vector<std::shared_ptr<const std::string>>* handed_over = nullptr);


    const gateway_options options;
    /// options.metrics, or null: checked once per event.
    metrics_sink* const metrics = options.metrics.get();
    const std::shared_ptr<auth::token_validator> validator;
    const std::shared_ptr<session::session_store> store;
    routing::endpoint_registry endpoints;
    /// The store's expiry rules (session_store::timing()).
    const session::session_timing store_timing = store->timing();
    /// How often a connected session is touched (options, else a quarter of
    /// the store's idle_timeout, else one minute).
    const std::chrono::milliseconds refresh_interval = pick_refresh_interval(options, store_timing);

    std::atomic<std::uint64_t> next_connection_id{1};
    std::atomic<bool> stopping{false};

    // --- counters (gateway_stats.hpp: one row each) and the atomic gauges ---
#define GATEHOUSE_DETAIL_COUNTER_ATOMIC(field, exposed, help) std::atomic<std::uint64_t> field{0};
    GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_DETAIL_COUNTER_ATOMIC)
#undef GATEHOUSE_DETAIL_COUNTER_ATOMIC
    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> client_calls_pending{0};
    /// What every connection's dispatcher counts with.
    const dispatch_context dispatch{options, metrics, frames_dropped, responses_unmatched, account_rate_limited};

    // --- parts with their own locks ---
    /// Open connections per source address (the upgrade gate's cap).
    address_connections addresses{options.limit_loopback_addresses};
    /// Peer GUID -> connection (§12).
    peer_directory<connection_state> peers;
    /// Every connection's next wake-up, on one transport timer; and the
    /// node's delayed work (retry_delivery).
    const std::shared_ptr<wake_scheduler<connection_state>> wakes =
        std::make_shared<wake_scheduler<connection_state>>();

    // --- event queue store (options.event_queue_store) ---
    /// Null: parked sessions' events are queued in `parked` (this node's memory).
    session::event_queue_store* const queue_store = options.event_queue_store.get();
    /// This node's id in session records and event queues: the bus's id
    /// when there is a bus (so node_alive can be asked about it), else node_id.
    const std::string queue_node = options.event_bus ? std::string(options.event_bus->node_id()) : options.node_id;
    const session::event_queue_limits queue_limits{options.reconnect_queue_max_events,
                                                   options.reconnect_queue_max_bytes, options.reconnect_queue_max_age,
                                                   options.reconnect_window};
    /// Parks `session_id` in the store with the events its connection could not send.
    void store_park(const std::string& session_id, std::vector<std::string> events);
    /// Appends an event for a parked session (this node's, or one no live
    /// node holds); refused ones go to the holder over the bus.
    void store_append(const std::string& session_id, std::shared_ptr<const std::string> frame);
    /// An event for a session no live node declared on the bus: into its
    /// queue in the store, which is opened when the session is live in the
    /// session store but was held by a node that died (or never parked).
    ///
    /// `attempt` counts the rounds of one event's delivery (see
    /// retry_delivery): every path that can come back here carries it.
    void push_unrouted(const std::string& session_id, std::shared_ptr<const std::string> frame, unsigned attempt);
    /// Parks `session_id` with one event on behalf of `node` (a dead holder, or this node).
    void park_for(const std::string& session_id, const std::string& node, std::shared_ptr<const std::string> frame,
                  unsigned attempt = 0);
    /// An event the store refused because `holder` has the session: over
    /// the bus to it, or back into the store when the holder is this node.
    void forward_to_holder(const std::string& session_id, const std::string& holder,
                           std::shared_ptr<const std::string> frame, unsigned attempt = 0);
    /// push_to_session for a session not live here, with a bus and an event
    /// queue store: to the node the bus names, else push_unrouted.
    void route_to_session(const std::string& session_id, std::shared_ptr<const std::string> frame, unsigned attempt);
    /// A session that is moving: the session store names a live node (or
    /// this one) that has not yet declared it on the bus or taken its queue
    /// (an attach in progress), so neither the bus nor the queue takes the
    /// event now. route_to_session runs again after 10 ms, 20 ms, ... (at
    /// most max_delivery_retries rounds, about 2.5 s in all: an attach takes
    /// a few store round trips); then the event is counted as dropped.
    /// Timed by wakes->run_after: the transport's deferral, else the timer
    /// driver; with neither (another transport, no connection yet) the
    /// rounds follow each other at once.
    void retry_delivery(const std::string& session_id, std::shared_ptr<const std::string> frame, unsigned attempt);
    static constexpr unsigned max_delivery_retries = 8;
    /// The answer to the take of a connection that closed meanwhile: the
    /// taken events, in order, ahead of what was queued since.
    void taken_after_close(const std::string& session_id, std::vector<std::string> taken);
    /// Takes the queued events of a session just attached to `connection`.
    void store_take(const std::shared_ptr<connection_state>& connection);

    // --- cluster (options.event_bus) ---
    /// Null without a cluster: then every bus_* call does nothing.
    cluster::event_bus* const bus = options.event_bus.get();
    /// Declares / withdraws this node's interest. Called with the registry
    /// lock held (the bus only records or posts; it never calls back inline).
    void bus_interest(cluster::interest_kind kind, const std::string& name, bool declare);
    /// Hands a message to the bus; counts the outcome.
    void bus_publish(cluster::message_kind kind, std::string_view target, std::string_view payload);
    /// A message from another node (the bus's executor).
    void on_bus_message(const cluster::bus_message& message);
    /// to_node payload asking the node to close one of its sessions for the
    /// login policy replace_oldest ("gatehouse.replace:<session id>").
    static constexpr std::string_view replace_command = "gatehouse.replace:";
    /// replace_oldest across nodes: the account's sessions in the shared
    /// store beyond the cap, oldest first, are closed where they are held.
    void replace_oldest_in_cluster(const std::string& account_id, const std::string& newcomer);

    // --- local delivery of a pushed event frame (push_* and the bus) ---
    std::size_t push_local_session(const std::string& session_id, std::shared_ptr<const std::string> frame);
    std::size_t push_local_account(const std::string& account_id, std::shared_ptr<const std::string> frame);
    std::size_t push_local_group(const std::string& group, std::shared_ptr<const std::string> frame);
    std::size_t push_local_all(std::shared_ptr<const std::string> frame);

    /// Live and parked sessions, accounts, groups, open connections: its
    /// own lock (sessions.lock()), never held across a call out.
    registry sessions;

private:
    connect_rate_limiter connect_limiter_;
};

// ---------------------------------------------------------------------------
// helpers

/// The session id a credential's session key stands for: the key itself
/// when it is session-id text, else a GUID derived from it (so the same
/// token keeps reaching the same session, §2.3); empty when there is none.
inline std::string session_id_for(const auth::identity& who, std::string_view salt) {
    if (who.session_key.empty()) return {};
    std::string lower = who.session_key;
    for (auto& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (session::is_session_id(lower)) return lower;
    std::string input = "session-key:";
    input.append(who.subject).append("|").append(who.session_key).append("|salt:").append(salt);
    return routing::derive_guid(input, routing::guid_kind::service).to_string();
}

inline session::time_point to_session_time(const std::optional<std::chrono::system_clock::time_point>& t) {
    if (!t) return {};
    return std::chrono::time_point_cast<std::chrono::milliseconds>(*t);
}

}  // namespace gatehouse::server::detail
