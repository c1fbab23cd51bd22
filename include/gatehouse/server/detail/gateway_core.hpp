// The gateway's state: gateway_core (one per gateway: the session registry,
// parking, the cluster link, timers, counters) and connection_state (one per
// connection: attach, sending, server-to-client calls and peers; its
// requests go through its dispatcher, detail/dispatcher.hpp), with the small
// types they share. The member functions are defined next to their part, in
// gatehouse/server/impl/: gateway_upgrade.ipp, gateway_registry.ipp,
// gateway_parking.ipp, gateway_cluster.ipp, connection_attach.ipp,
// connection_send.ipp, connection_calls.ipp, gateway_metrics.ipp.
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

/// One account's sessions on this node (live or parked) and their shared
/// message bucket (made when a second session goes live). A vector, not a
/// set: most accounts have one session, and a one-element unordered_set
/// costs ~250 bytes (bucket array and node) on every idle session.
struct account_entry {
    std::vector<std::string> sessions;
    std::shared_ptr<account_bucket> bucket;
};

/// The result of a validator that did not answer during the upgrade.
struct validation_slot {
    std::mutex mutex;
    bool done = false;
    std::error_code error;
    auth::identity who;
    std::weak_ptr<connection_state> waiting;
};

class gateway_core;

/// A session whose connection ended while its client may come back
/// (§13.4): kept, with its groups and account, for reconnect_window.
/// Guarded by the registry mutex.
struct parked_session {
    std::string session_id;
    std::string account_id;
    std::string token_id;     ///< for revocation by token id
    std::string session_key;  ///< for revocation by session key
    steady::time_point until{};
    event_queue queue;
    std::uint64_t dropped = 0;
    /// The ended connection's transport object: its timers still run on the
    /// I/O context (the core has no executor of its own).
    std::shared_ptr<transport_connection> timers;
    steady::time_point next_wake{};
    /// With an event_queue_store: the connection closed while its take was
    /// outstanding. Events wait in `queue` until the take answers, then go
    /// to the store behind the taken ones (taken_after_close).
    bool store_park_pending = false;
};

/// The session registry's state: live sessions, accounts, groups, open
/// connections, parked sessions and their totals. Reachable only through a
/// registry_lock (gateway_core::lock_registry()), that is with the
/// registry's mutex held: "which lock guards this" is a type, not a comment.
/// Parked sessions are under the same lock as live ones, so that a push
/// reaches both in one order.
struct registry_state {
    std::unordered_map<std::string, std::shared_ptr<connection_state>> sessions;
    /// Account -> its sessions here (live or parked) and their bucket.
    std::unordered_map<std::string, account_entry> accounts;
    std::unordered_map<std::string, std::unordered_set<std::string>> groups;
    std::unordered_map<std::string, std::unordered_set<std::string>> session_groups;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection_state>> open_connections;
    std::unordered_map<std::string, parked_session> parked;
    std::size_t parked_bytes = 0;  ///< queued for all parked sessions
    std::size_t parked_events = 0;
    std::uint64_t push_sequence = 0;
    auth::revocation_subscription revocation_watch;
};

/// The registry's mutex, held: the only way to registry_state. Functions
/// that must run under it (the `_locked` ones) take one.
class registry_lock {
public:
    registry_state* operator->() const noexcept { return state_; }
    registry_state& operator*() const noexcept { return *state_; }

private:
    friend class gateway_core;
    registry_lock(std::mutex& mutex, registry_state& state) : lock_(mutex), state_(&state) {}
    std::unique_lock<std::mutex> lock_;
    registry_state* state_;
};

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

    // --- sessions: the `_locked` functions take the registry lock as proof ---
    std::shared_ptr<connection_state> find_session(std::string_view session_id) const;
    std::size_t account_sessions(const std::string& account_id, const std::string& except_session) const;
    /// Live (not parked) sessions of an account.
    std::size_t live_account_sessions_locked(const registry_lock& reg, const std::string& account_id,
                                             const std::string& except) const;

    /// A pushed event with the next sequence number: under the registry
    /// lock, so that parked queues and live connections see one push order.
    static queued_event next_event_locked(const registry_lock& reg, std::shared_ptr<const std::string> frame) {
        return queued_event{++reg->push_sequence, steady::now(), std::move(frame), false};
    }
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
    void forget_session_locked(const registry_lock& reg, const std::string& session_id, const std::string& account_id);
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
    routing::endpoint_registry registry;
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

    /// The registry's mutex, and with it its state. Never held across a
    /// call out (the store, the bus's completions, the host's handlers).
    registry_lock lock_registry() const { return registry_lock(registry_mutex_, registry_state_); }

private:
    connect_rate_limiter connect_limiter_;
    mutable std::mutex registry_mutex_;
    mutable registry_state registry_state_;
};

/// Everything the gateway knows about one connection. All members are used
/// on the connection's executor only, except the few marked otherwise.
class connection_state final : public dispatch_host, public std::enable_shared_from_this<connection_state> {
public:
    enum class phase : std::uint8_t { validating, attaching, ready, closed };

    connection_state(std::shared_ptr<gateway_core> core, std::uint64_t id, std::string remote)
        : core_(std::move(core)), id_(id) {
        upgrade->remote = std::move(remote);
    }
    /// gateway_core::wakes (its lock guards it).
    deadline_hook<connection_state> timer_hook{this};
    ~connection_state();
    connection_state(const connection_state&) = delete;
    connection_state& operator=(const connection_state&) = delete;

    // --- set during the upgrade, before the transport knows the connection ---
    /// What only the upgrade and the attachment need; freed once the session
    /// is attached (or the connection closed): an idle session keeps none of it.
    struct upgrade_state {
        auth::identity identity;
        bool identity_ready = false;
        std::shared_ptr<validation_slot> validation;
        std::string reconnect_token;  ///< secret; cleared once used
        std::string remote;           ///< then in session_info::remote_address
    };
    std::unique_ptr<upgrade_state> upgrade = std::make_unique<upgrade_state>();
    /// on_open reported it to the metrics sink (connection executor).
    bool counted_open = false;
    /// The close code this side sent (0: none).
    std::uint16_t close_code_sent() const noexcept { return server_close_code_; }

    /// Set in on_open, never changed: any thread may post through it once
    /// it got the connection from the session registry.
    std::shared_ptr<transport_connection> transport;

    std::uint64_t id() const noexcept { return id_; }
    /// Attached session id and account: written before registration, then
    /// immutable (readable by any thread that found the connection in the registry).
    std::string session_id;
    std::string account_id;
    /// The session as attached (identity included): set before registration,
    /// then immutable like session_id; revocation matching reads it from
    /// other threads. Handlers get the dispatcher's session(), which a refresh replaces.
    std::shared_ptr<const routing::session_info> attached_info;
    /// The session's created_at in the store: set before registration, then
    /// immutable (replace_oldest compares it under the registry lock).
    session::time_point session_created{};
    /// Counted in gateway_core::addresses (connection executor).
    bool address_counted = false;
    /// Chosen by the login policy replace_oldest to make room (registry lock).
    bool replaced_by_policy = false;
    /// At registration (connection executor).
    void share_account_bucket(std::shared_ptr<account_bucket> bucket) noexcept {
        dispatch_.share_account_bucket(std::move(bucket));
    }
    /// The source address: the upgrade's, then the attached session's.
    const std::string& remote_address() const noexcept {
        static const std::string none;
        if (upgrade) return upgrade->remote;
        return attached_info ? attached_info->remote_address : none;
    }

    /// Why this side is closing, for the observer (kept from the first
    /// decision to close: later ones do not change it).
    void mark_end(session_end_reason reason) noexcept {
        if (!has_end_reason_ && !closing_ && !notifying_) {
            has_end_reason_ = true;
            end_reason_ = reason;
        }
    }
    /// Another node took the session (session_taken).
    void mark_moved() noexcept {
        if (!closing_ && !notifying_) moved_ = true;
    }
    /// How the connection ended, once closed (`peer_code` as on_close got it).
    session_ending ending(std::uint16_t peer_code) const noexcept;

    void start();
    void validated();
    void on_frame(frame_kind kind, protocol::bytes_view bytes) { dispatch_.on_frame(kind == frame_kind::text, bytes); }
    void on_closed();
    /// The wake-up scheduled through gateway_core::wakes is due (or
    /// earlier: every check compares with the clock).
    void on_timer();
    /// False when the frame was not handed to the transport (closing, or
    /// the send queue overflowed and the connection is now closing).
    bool send_frame(protocol::bytes_view bytes);
    /// send_frame for a response frame with `code`, counted by the sink.
    void send_response(protocol::bytes_view bytes, protocol::response_code code) override;
    void close_with(std::uint16_t code, std::string_view reason) override;
    /// Sends `connect.disconnect-notification` (with a reconnection token
    /// when `reconnectable` and the store issues one), then closes.
    void notify_and_close(std::uint16_t code, std::string_view close_reason, std::string_view reason,
                          bool reconnectable);
    /// A refreshed credential for this session (/connect/refresh).
    void refreshed(auth::identity fresh);
    void change_permissions(std::vector<std::string> roles, std::vector<std::string> permissions,
                            const std::string& reason);

    /// A pushed event: sent, or held until the manifest has gone out (so
    /// that it follows the manifest and any replayed events), or, once the
    /// connection is closing, kept for the session's next connection.
    void deliver_event(queued_event event);
    /// gateway::disconnect: notification (with a reconnection token when the
    /// client may come back), then close.
    void disconnect_by_host(std::uint16_t code, const std::string& reason);
    /// Whether the session should be parked now that the connection ended
    /// with `peer_code` (the peer's close code, 1006 when none).
    bool parkable(std::uint16_t peer_code) const noexcept;
    /// Events held back (connection executor; the connection is closed).
    event_queue take_held() noexcept { return std::move(held_); }
    /// Its take from the event queue store has not answered yet.
    bool awaiting_queue() const noexcept { return awaiting_queue_; }
    /// The event queue store answered the take of this session's queue.
    void queue_taken(std::error_code ec, session::taken_events taken);

    // --- server-to-client requests (§12.3) ---
    void start_client_call(std::shared_ptr<client_call> call, const client_call_options& options, std::string payload);

    // --- peers (§12) ---
    /// Sends a peer frame forwarded from another connection; false when this
    /// connection can no longer take it.
    bool accept_peer_frame(protocol::bytes_view bytes);
    /// The sender's side of a forwarded peer message: acknowledge or 31.
    void peer_result(const protocol::request_header& header, const protocol::guid& target, bool delivered);

    /// Runs `fn(connection)` on the connection's executor.
    template <class F>
    static void post(const std::shared_ptr<connection_state>& connection, F fn) {
        auto* transport = connection->transport.get();
        transport->post([connection, fn = std::move(fn)]() mutable { fn(*connection); });
    }

private:
    struct pending_client_call {
        std::shared_ptr<client_call> call;
        steady::time_point deadline;
    };

    void attach();
    /// `existed`: the session was stored before this connection (a
    /// reconnection, or a credential naming an existing session);
    /// `previous_node`: the node its record named before this attach.
    void attached(session::session_record record, bool existed, std::string previous_node);
    /// Touches the session in the store (liveness), at most one at a time.
    void refresh();
    void refresh_answered(std::error_code ec);
    void attach_failed(std::error_code error);
    void send_manifest(std::string_view reason);
    // --- dispatch_host: what the dispatcher asks of its connection ---
    bool client_response(const protocol::frame_view& frame) override { return complete_client_call(frame); }
    void peer_frame(const protocol::frame_view& frame, protocol::bytes_view bytes) override { route_peer(frame, bytes); }
    void deadline_changed() override { rearm_timer(); }
    void post_answer(std::shared_ptr<pending_call> call, protocol::response_code code, bool binary,
                     std::string payload) override;
    std::weak_ptr<dispatch_host> weak_host() noexcept override { return weak_from_this(); }

    void schedule_expiry();
    /// Asks the core for a wake-up at the earliest of this connection's
    /// deadlines, if that is earlier than the one already requested.
    void rearm_timer();
    void send_notification(std::string_view reason, const session::reconnect_token* token);
    void flush_held();
    bool complete_client_call(const protocol::frame_view& frame);
    void client_call_timed_out(std::uint64_t message_id);
    void fail_client_calls(std::error_code ec);
    void finish_client_call(const std::shared_ptr<client_call>& call, std::error_code ec, client_reply reply);
    void route_peer(const protocol::frame_view& frame, protocol::bytes_view bytes);

    std::shared_ptr<gateway_core> core_;
    const std::uint64_t id_;

    phase phase_ = phase::validating;
    bool closing_ = false;
    bool reconnecting_ = false;
    /// The request side: frame checks, channels, handler calls, answers.
    /// Holds the session_info handlers get and the session's routes.
    dispatcher dispatch_{*this, core_->dispatch};
    bool notifying_ = false;
    /// When the current credential expires (refresh moves it); zero: never.
    /// With the validator's leeway (auth::identity::valid_until): the rule
    /// of the upgrade applies while connected too.
    std::optional<std::chrono::system_clock::time_point> token_expiry_;
    /// created_at + the store's max_lifetime; zero: the store does not say.
    std::optional<std::chrono::system_clock::time_point> lifetime_end_;
    /// Liveness: the next touch of the session (zero: none), one at a time.
    steady::time_point next_refresh_{};
    bool refreshing_ = false;
    std::uint8_t refresh_failures_ = 0;
    bool has_end_reason_ = false;
    session_end_reason end_reason_ = session_end_reason::client_closed;
    bool moved_ = false;

    // --- timed work (see gateway_core "timers"); zero: nothing scheduled ---
    steady::time_point wake_{};          ///< the wake-up last requested
    steady::time_point next_ping_{};
    steady::time_point expiry_check_{};  ///< compare token_expiry_ with the system clock
    steady::time_point manifest_at_{};
    bool manifest_reconnected_ = false;

    /// Events waiting for the manifest, or for the next connection.
    event_queue held_;
    bool manifest_sent_ = false;
    /// Events wait in held_ until the store's queue of this session arrived.
    bool awaiting_queue_ = false;
    /// The close code this side sent (0: none; the peer closed or vanished).
    std::uint16_t server_close_code_ = 0;
    /// Created with the first server-to-client call (most sessions get none).
    std::unique_ptr<std::unordered_map<std::uint64_t, pending_client_call>> client_calls_;
    std::unordered_map<std::uint64_t, pending_client_call>& client_calls() {
        if (!client_calls_) client_calls_ = std::make_unique<std::unordered_map<std::uint64_t, pending_client_call>>();
        return *client_calls_;
    }
    bool no_client_calls() const noexcept { return !client_calls_ || client_calls_->empty(); }
    protocol::guid peer_guid_{};
    bool has_peer_ = false;
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
