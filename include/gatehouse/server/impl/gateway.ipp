// Implementation of gatehouse/server/gateway.hpp: upgrade decisions, session
// attachment, the dispatcher (PROTOCOL.md §8.2 and §18), push and groups.
// Nothing here knows websocketpp; the transport seam is
// gatehouse/server/transport.hpp.
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
#include <gatehouse/server/detail/session_events.hpp>
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/session/session.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

class connection_state;

/// The connection whose executor the current thread is running, while the
/// gateway runs a handler; lets a responder completed inline skip the post.
inline thread_local const connection_state* current_connection = nullptr;

/// Where response frames are assembled before the transport copies them:
/// one per thread rather than one per connection (whose capacity would stay
/// with every connection that ever answered something).
inline thread_local std::string reply_buffer;

using steady = std::chrono::steady_clock;

/// A token bucket: `capacity` tokens, refilled at `per_second`.
struct token_bucket {
    double tokens = 0;
    steady::time_point last{};

    bool take(double capacity, double per_second, steady::time_point now) noexcept {
        if (last == steady::time_point{}) {
            tokens = capacity;
        } else if (now > last) {
            // A caller that read the clock before another one took the
            // bucket arrives with an earlier `now`: no refill, and `last`
            // stays (a negative interval would take tokens away).
            const double elapsed = std::chrono::duration<double>(now - last).count();
            tokens = std::min(capacity, tokens + elapsed * per_second);
        }
        if (now > last) last = now;
        if (tokens < 1.0) return false;
        tokens -= 1.0;
        return true;
    }
};

/// The message bucket one account's sessions on this node share. Its own
/// lock: connections of one account may run on different I/O threads, and
/// no other account waits for it.
struct account_bucket {
    std::mutex mutex;
    token_bucket bucket;
    bool take(double capacity, double per_second, steady::time_point now) {
        std::lock_guard<std::mutex> lock(mutex);
        return bucket.take(capacity, per_second, now);
    }
};

/// One account's sessions on this node (live or parked) and their shared
/// message bucket (made when a second session goes live). A vector, not a
/// set: most accounts have one session, and a one-element unordered_set
/// costs ~250 bytes (bucket array and node) on every idle session.
struct account_entry {
    std::vector<std::string> sessions;
    std::shared_ptr<account_bucket> bucket;
};

/// Whether `address` is a loopback peer (127.0.0.0/8, ::1; IPv4-mapped
/// addresses arrive as IPv4).
inline bool is_loopback_address(std::string_view address) noexcept {
    return address == "::1" || address.rfind("127.", 0) == 0;
}

/// Connect-rate limit per source address. Upgrades are not the message
/// path: one mutex is fine here.
class connect_rate_limiter {
public:
    bool allow(std::string_view address, double capacity, double per_second) {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto now = steady::now();
        if (buckets_.size() >= max_tracked_addresses) prune(capacity, per_second, now);
        return buckets_[std::string(address)].take(capacity, per_second, now);
    }

private:
    static constexpr std::size_t max_tracked_addresses = 65536;

    // Forget addresses whose bucket has refilled: they are indistinguishable
    // from new ones. If every bucket is busy (an attack from many
    // addresses), forget all: the limiter then errs on the side of accepting.
    void prune(double capacity, double per_second, steady::time_point now) {
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            const double elapsed = std::chrono::duration<double>(now - it->second.last).count();
            if (it->second.tokens + elapsed * per_second >= capacity)
                it = buckets_.erase(it);
            else
                ++it;
        }
        if (buckets_.size() >= max_tracked_addresses) buckets_.clear();
    }

    std::mutex mutex_;
    std::unordered_map<std::string, token_bucket> buckets_;
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

/// An event on its way to a session: pushed frames are shared by every
/// target; `sequence` is the push order (assigned under the registry lock),
/// which queues keep across a reconnection.
struct queued_event {
    std::uint64_t sequence = 0;
    steady::time_point pushed_at{};
    std::shared_ptr<const std::string> frame;
    bool replayed = false;  ///< held for a parked session
};

/// A FIFO that allocates nothing until its first element: libstdc++'s
/// std::deque allocates ~576 bytes on construction, even when it stays
/// empty, and most connections never queue anything (idle sessions, handlers
/// answering inline). Once used, the storage stays until clear() or
/// release_if_empty().
template <class T>
class lazy_fifo {
public:
    lazy_fifo() noexcept = default;
    lazy_fifo(lazy_fifo&& other) noexcept : items_(std::move(other.items_)) {}
    lazy_fifo& operator=(lazy_fifo&& other) noexcept {
        items_ = std::move(other.items_);
        return *this;
    }
    lazy_fifo(const lazy_fifo&) = delete;
    lazy_fifo& operator=(const lazy_fifo&) = delete;

    bool empty() const noexcept { return !items_ || items_->empty(); }
    std::size_t size() const noexcept { return items_ ? items_->size() : 0; }
    T& front() { return items_->front(); }
    const T& front() const { return items_->front(); }
    void push_back(T item) { storage().push_back(std::move(item)); }
    T pop_front() {
        T item = std::move(items_->front());
        items_->pop_front();
        return item;
    }
    /// Frees the storage too.
    void clear() noexcept { items_.reset(); }
    void release_if_empty() noexcept {
        if (items_ && items_->empty()) items_.reset();
    }
    /// The underlying deque, created on demand (for ordered insertion).
    std::deque<T>& storage() {
        if (!items_) items_ = std::make_unique<std::deque<T>>();
        return *items_;
    }

private:
    std::unique_ptr<std::deque<T>> items_;
};

/// Events ordered by push sequence, with their total size.
class event_queue {
public:
    event_queue() = default;
    event_queue(event_queue&& other) noexcept
        : events_(std::move(other.events_)), bytes_(std::exchange(other.bytes_, 0)) {}
    event_queue& operator=(event_queue&& other) noexcept {
        events_ = std::move(other.events_);
        bytes_ = std::exchange(other.bytes_, 0);
        return *this;
    }
    event_queue(const event_queue&) = delete;
    event_queue& operator=(const event_queue&) = delete;

    /// Inserts in sequence order (late arrivals are rare and land near the back).
    void insert(queued_event event) {
        bytes_ += event.frame->size();
        auto& events = events_.storage();
        auto at = events.end();
        while (at != events.begin() && std::prev(at)->sequence > event.sequence) --at;
        events.insert(at, std::move(event));
    }
    /// The storage is freed with the last event: queues are mostly empty.
    queued_event pop_front() {
        queued_event front = events_.pop_front();
        events_.release_if_empty();
        bytes_ -= front.frame->size();
        return front;
    }
    bool empty() const noexcept { return events_.empty(); }
    std::size_t size() const noexcept { return events_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }
    const queued_event& front() const { return events_.front(); }
    void clear() noexcept {
        events_.clear();
        bytes_ = 0;
    }

private:
    lazy_fifo<queued_event> events_;
    std::size_t bytes_ = 0;
};

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

/// One request handed to a handler: the gateway's side of its responder.
class pending_call final : public routing::detail::call_completion,
                           public std::enable_shared_from_this<pending_call> {
public:
    pending_call(std::weak_ptr<connection_state> owner, const connection_state* owner_address,
                 const protocol::request_header& header, steady::time_point deadline) noexcept
        : owner_(std::move(owner)), owner_address_(owner_address), header_(header), deadline_(deadline) {}

    bool complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept override;

    /// Makes an answered call, that nobody but its connection holds, ready
    /// for another request (connection executor).
    void reset(const protocol::request_header& header, steady::time_point deadline) noexcept {
        header_ = header;
        deadline_ = deadline;
        delivered = false;
        answered_.store(false, std::memory_order_relaxed);
    }

    /// Claims the answer for the gateway (timeout); false if already taken.
    bool claim() noexcept { return !answered_.exchange(true, std::memory_order_acq_rel); }
    bool answered() const noexcept { return answered_.load(std::memory_order_acquire); }

    const protocol::request_header& header() const noexcept { return header_; }
    steady::time_point deadline() const noexcept { return deadline_; }
    /// Connection executor only.
    bool delivered = false;

private:
    std::weak_ptr<connection_state> owner_;
    /// Compared with current_connection only: an answer given inside the
    /// handler call, on the owner's executor, needs no weak_ptr lock.
    const connection_state* const owner_address_;
    protocol::request_header header_;
    steady::time_point deadline_;
    std::atomic<bool> answered_{false};
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

    // --- abuse limits ---
    /// Connections per source address (loopback aside unless limited).
    std::mutex addresses_mutex;
    std::unordered_map<std::string, std::size_t> address_connections;
    /// Counts a connection from `address`; false (nothing counted) at the cap.
    bool admit_address(std::string_view address);
    void release_address(const std::string& address);
    std::shared_ptr<connection_state> find_session(std::string_view session_id) const;
    std::size_t account_sessions(const std::string& account_id, const std::string& except_session) const;
    /// Live (not parked) sessions of an account. Registry lock held.
    std::size_t live_account_sessions_locked(const std::string& account_id, const std::string& except) const;

    /// A pushed event with the next sequence number. Registry lock held, so
    /// that parked queues and live connections see one push order.
    queued_event next_event_locked(std::shared_ptr<const std::string> frame) {
        return queued_event{++push_sequence, steady::now(), std::move(frame), false};
    }
    /// Adds the live connection of `session_id` to `live`, or queues `event`
    /// when the session is parked; returns 1 for either, 0 when unknown.
    /// Registry lock held.
    std::size_t target_locked(const std::string& session_id, const queued_event& event,
                              std::vector<std::shared_ptr<connection_state>>& live);
    /// An event a connection could not send (it closed): to the session's
    /// parked queue or its live successor, else dropped.
    void reroute_event(const std::string& session_id, const connection_state* from, queued_event event);
    /// Queues `event` for a parked session. Registry lock held.
    void queue_parked_locked(parked_session& parked, queued_event event, steady::time_point now);
    /// Drops events older than reconnect_queue_max_age. Registry lock held.
    void prune_parked_locked(parked_session& parked, steady::time_point now);
    /// Forgets a parked session: its queue, groups and account; reports
    /// closed (`reason`), or moved. Registry lock held.
    void forget_parked_locked(std::unordered_map<std::string, parked_session>::iterator it, session_end_reason reason,
                              bool moved = false);
    void forget_session_locked(const std::string& session_id, const std::string& account_id);
    /// Arms the parked session's timer for `wake`, if earlier than the armed one.
    void arm_parked_locked(parked_session& parked, steady::time_point wake);
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

    // --- peers (§12) ---
    void add_peer(const protocol::guid& peer, const std::shared_ptr<connection_state>& connection);
    void remove_peer(const protocol::guid& peer, const connection_state* connection);
    std::shared_ptr<connection_state> find_peer(const protocol::guid& peer) const;

    // --- timers ---
    // Every connection's timed work (pings, token expiry, handler and
    // server-to-client call timeouts, the manifest delay) goes through one
    // deadline queue holding each connection's earliest wake-up, instead of
    // a transport timer per connection and purpose (~300 bytes each on every
    // idle session). One transport timer (post_after on a connection's
    // transport, the "driver") is armed for the earliest wake-up; when it
    // fires, the due connections are posted their on_timer() on their own
    // executors.
    /// Arms or moves `c`'s wake-up to `at`. Connection executor.
    void schedule_wake(connection_state& c, steady::time_point at);
    /// Disarms `c`'s wake-up. Any thread (also the destructor's).
    void cancel_wake(connection_state& c) noexcept;
    /// The driver's timer armed for `tick` fired (driver's executor).
    void timer_tick(steady::time_point tick);
    /// Arms the driver for the earliest wake-up unless a tick at or before
    /// it is outstanding. timers_mutex held.
    void arm_driver_locked(steady::time_point now);

    std::mutex timers_mutex;
    /// Guarded by timers_mutex, like every connection's hook in it.
    deadline_queue<connection_state> timers;
    /// The earliest outstanding driver tick (zero: none). timers_mutex.
    steady::time_point timer_armed{};
    /// The transport connection whose post_after drives the queue: the first
    /// one that scheduled a wake-up (post_after keeps working after its
    /// connection closed). timers_mutex; reset by ~gateway.
    std::shared_ptr<transport_connection> timer_driver;
    /// Runs a function after a delay on an I/O thread, for timed work not
    /// tied to a connection (retry_delivery); installed by the built-in
    /// transport for its lifetime (empty otherwise). Called with
    /// timers_mutex held: it only arms a timer.
    using deferral = std::function<void(std::uint32_t delay_ms, std::function<void()> fn)>;
    deferral defer_after;
    void set_deferral(deferral fn) {
        std::lock_guard<std::mutex> lock(timers_mutex);
        defer_after = std::move(fn);
    }

    /// Guarded by registry_mutex.
    auth::revocation_subscription revocation_watch;

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
    /// Timed by defer_after, else by timer_driver; with neither (another
    /// transport, no connection yet) the rounds follow each other at once.
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

    mutable std::mutex registry_mutex;
    std::unordered_map<std::string, std::shared_ptr<connection_state>> sessions;
    /// Account -> its sessions here (live or parked) and their bucket.
    std::unordered_map<std::string, account_entry> accounts;
    std::unordered_map<std::string, std::unordered_set<std::string>> groups;
    std::unordered_map<std::string, std::unordered_set<std::string>> session_groups;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection_state>> open_connections;
    std::unordered_map<std::string, parked_session> parked;
    std::size_t parked_bytes = 0;   ///< queued for all parked sessions
    std::size_t parked_events = 0;
    std::uint64_t push_sequence = 0;

    mutable std::mutex peers_mutex;
    std::unordered_map<protocol::guid, std::weak_ptr<connection_state>> peers;

private:
    connect_rate_limiter connect_limiter_;
};

/// Everything the gateway knows about one connection. All members are used
/// on the connection's executor only, except the few marked otherwise.
class connection_state final : public std::enable_shared_from_this<connection_state> {
public:
    enum class phase : std::uint8_t { validating, attaching, ready, closed };

    connection_state(std::shared_ptr<gateway_core> core, std::uint64_t id, std::string remote)
        : core_(std::move(core)), id_(id) {
        upgrade->remote = std::move(remote);
    }
    /// gateway_core::timers_mutex guards it.
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
    /// other threads. Handlers get info_, which a refresh replaces.
    std::shared_ptr<const routing::session_info> attached_info;
    /// The session's created_at in the store: set before registration, then
    /// immutable (replace_oldest compares it under the registry lock).
    session::time_point session_created{};
    /// Counted in gateway_core::address_connections (connection executor).
    bool address_counted = false;
    /// Chosen by the login policy replace_oldest to make room (registry lock).
    bool replaced_by_policy = false;
    /// At registration (connection executor).
    void share_account_bucket(std::shared_ptr<account_bucket> bucket) noexcept { account_bucket_ = std::move(bucket); }
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
    void on_frame(frame_kind kind, protocol::bytes_view bytes);
    void on_closed();
    /// The wake-up scheduled through gateway_core::schedule_wake is due (or
    /// earlier: every check compares with the clock).
    void on_timer();
    void deliver(pending_call& call, protocol::response_code code, bool binary, protocol::bytes_view payload);
    /// False when the frame was not handed to the transport (closing, or
    /// the send queue overflowed and the connection is now closing).
    bool send_frame(protocol::bytes_view bytes);
    /// send_frame for a response frame with `code`, counted by the sink.
    void send_response(protocol::bytes_view bytes, protocol::response_code code);
    void close_with(std::uint16_t code, std::string_view reason);
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
    struct queued_request {
        protocol::request_header header;
        const routing::endpoint* target = nullptr;
        std::string payload;
    };
    /// A channel with a request being handled or waiting. Few at a time
    /// (at most max_in_flight busy), so a flat vector searched linearly: the
    /// common case (one request on channel 0, answered inline) allocates
    /// nothing per message.
    struct channel_state {
        std::uint16_t id = 0;
        bool busy = false;
        bool in_ready = false;
        lazy_fifo<queued_request> waiting;
    };
    struct pending_client_call {
        std::shared_ptr<client_call> call;
        steady::time_point deadline;
    };
    channel_state* find_channel(std::uint16_t id) noexcept {
        for (auto& c : channels_)
            if (c.id == id) return &c;
        return nullptr;
    }
    void erase_channel(std::uint16_t id) noexcept {
        for (auto& c : channels_)
            if (c.id == id) {
                if (&c != &channels_.back()) c = std::move(channels_.back());
                channels_.pop_back();
                return;
            }
    }

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
    void reply_error(const protocol::frame_view& frame, protocol::response_code code);
    void send_text_refusal();
    void enqueue(const protocol::frame_view& frame, const routing::endpoint* target, steady::time_point now);
    /// `now`: the dispatch time (the handler timeout counts from it).
    void invoke(const routing::endpoint* target, const protocol::request_header& header, protocol::bytes_view payload,
                steady::time_point now);
    void pump();
    void finish_channel(std::uint16_t channel);
    void sweep(steady::time_point now);
    void schedule_expiry();
    /// Asks the core for a wake-up at the earliest of this connection's
    /// deadlines, if that is earlier than the one already requested.
    void rearm_timer();
    void send_notification(std::string_view reason, const session::reconnect_token* token);
    void reply_code(const protocol::request_header& request, protocol::response_code code,
                    protocol::bytes_view payload = {});
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
    std::shared_ptr<const routing::session_info> info_;
    routing::session_routes routes_;
    token_bucket message_bucket_;

    std::vector<channel_state> channels_;
    lazy_fifo<std::uint16_t> ready_;
    std::size_t in_flight_ = 0;
    std::size_t queued_ = 0;
    bool pumping_ = false;
    lazy_fifo<std::shared_ptr<pending_call>> timed_calls_;
    /// A pending_call answered inline and owned by nobody else, reused by
    /// the next request (no allocation per request in the common case).
    std::shared_ptr<pending_call> spare_call_;
    std::uint32_t text_sequence_ = 0;
    bool notifying_ = false;
    /// When the current credential expires (refresh moves it); zero: never.
    /// With the validator's leeway (auth::identity::valid_until): the rule
    /// of the upgrade applies while connected too.
    std::optional<std::chrono::system_clock::time_point> token_expiry_;
    /// created_at + the store's max_lifetime; zero: the store does not say.
    std::optional<std::chrono::system_clock::time_point> lifetime_end_;
    /// The account's bucket shared by its sessions here.
    std::shared_ptr<account_bucket> account_bucket_;
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
// pending_call

inline bool pending_call::complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept {
    if (answered_.exchange(true, std::memory_order_acq_rel)) return false;
    if (current_connection == owner_address_ && !owner_.expired()) {
        // Inside a handler call on the owner's executor, and the owner is
        // alive (not another connection at a recycled address): no lock.
        const_cast<connection_state*>(owner_address_)->deliver(*this, code, binary, payload);
        return true;
    }
    auto owner = owner_.lock();
    if (!owner) return false;
    try {
        connection_state::post(owner, [self = shared_from_this(), code, binary,
                                       data = std::string(payload.as_chars())](connection_state& c) {
            c.deliver(*self, code, binary, protocol::bytes_view(data));
        });
        return true;
    } catch (...) {
        return false;
    }
}

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

// ---------------------------------------------------------------------------
// gateway_core: upgrade

inline upgrade_decision gateway_core::on_upgrade(const upgrade_request& request) {
    const auto refuse = [this](upgrade_result result, const char* body) {
        upgrades_refused.fetch_add(1, std::memory_order_relaxed);
        count_upgrade(result);
        const int status = upgrade_result_status(result);
        upgrade_decision d;
        d.status = status;
        d.body = body;
        return d;
    };
    if (stopping.load(std::memory_order_acquire)) return refuse(upgrade_result::shutting_down, "Server shutting down");

    const std::string_view resource = request.resource();
    const auto question = resource.find('?');
    const std::string_view path = resource.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view{} : resource.substr(question + 1);
    if (path != options.path) return refuse(upgrade_result::not_found, "Not found");

    if (!connect_limiter_.allow(request.remote_address(), static_cast<double>(options.connect_burst),
                                options.connects_per_second))
        return refuse(upgrade_result::rate_limited, "Too many connection attempts");

    const std::string_view origin = request.header("Origin");
    if (!options.allowed_origins.empty() && !origin.empty() &&
        std::find(options.allowed_origins.begin(), options.allowed_origins.end(), origin) ==
            options.allowed_origins.end())
        return refuse(upgrade_result::forbidden_origin, "Origin not allowed");

    // Credentials: the Authorization header first, then the opt-in browser forms.
    auth::credential credential;
    std::string subprotocol;
    credential_sources sources;
    sources.accept_api_keys = options.accept_api_keys;
    sources.accept_query_token = options.accept_query_token;
    sources.accept_subprotocol_token = options.accept_subprotocol_token;
    sources.subprotocol_marker = options.subprotocol_marker;
    if (extract_credential(request.header("Authorization"), query, request.offered_subprotocols(), sources, credential,
                           subprotocol) != credential_outcome::found)
        return refuse(upgrade_result::unauthorized, "Invalid or missing credentials");

    auto connection = std::make_shared<connection_state>(shared_from_this(),
                                                         next_connection_id.fetch_add(1, std::memory_order_relaxed),
                                                         std::string(request.remote_address()));
    if (credential.kind == auth::credential_kind::reconnect) {
        // Consuming a reconnection token is store I/O: it happens after the
        // upgrade (§18 "asynchronous checks"); only its shape is checked here.
        if (!session::is_reconnect_token(credential.value))
            return refuse(upgrade_result::unauthorized, "Invalid or missing credentials");
        connection->upgrade->reconnect_token = std::move(credential.value);
    } else {
        auto slot = std::make_shared<validation_slot>();
        try {
            validator->async_validate(credential, [slot](std::error_code ec, auth::identity who) {
                std::shared_ptr<connection_state> waiting;
                {
                    std::lock_guard<std::mutex> lock(slot->mutex);
                    slot->done = true;
                    slot->error = ec;
                    slot->who = std::move(who);
                    waiting = slot->waiting.lock();
                }
                if (waiting) connection_state::post(waiting, [](connection_state& c) { c.validated(); });
            });
        } catch (...) {
            log(log_level::error, "token_validator threw during async_validate; upgrade refused");
            return refuse(upgrade_result::internal_error, "Internal error");
        }
        std::unique_lock<std::mutex> lock(slot->mutex);
        if (slot->done) {
            if (slot->error) return refuse(upgrade_result::unauthorized, "Invalid or missing credentials");
            connection->upgrade->identity = std::move(slot->who);
            connection->upgrade->identity_ready = true;
        } else {
            // The validator needs I/O: decide after the 101 (closing 4001 on failure).
            connection->upgrade->validation = std::move(slot);
        }
    }

    if (connection->upgrade->identity_ready &&
        options.account_session_policy == gateway_options::session_policy::refuse_newest) {
        const auto& who = connection->upgrade->identity;
        const auto sid = session_id_for(who, options.guid_salt);
        if (account_sessions(who.subject, sid) >= options.max_sessions_per_account)
            return refuse(upgrade_result::over_capacity, "Too many sessions for this account");
    }

    if (connections.fetch_add(1, std::memory_order_acq_rel) >= options.max_connections) {
        connections.fetch_sub(1, std::memory_order_acq_rel);
        return refuse(upgrade_result::over_capacity, "Server at capacity");
    }
    if (!admit_address(request.remote_address())) {
        connections.fetch_sub(1, std::memory_order_acq_rel);
        return refuse(upgrade_result::address_limit, "Too many connections from this address");
    }
    connection->address_counted = true;
    upgrades_accepted.fetch_add(1, std::memory_order_relaxed);
    count_upgrade(upgrade_result::accepted);
    upgrade_decision accept;
    accept.subprotocol = std::move(subprotocol);
    accept.context = std::move(connection);
    return accept;
}

inline void gateway_core::on_open(const std::shared_ptr<transport_connection>& t) {
    auto* raw = static_cast<connection_state*>(t->context());
    if (!raw) return;
    auto connection = raw->shared_from_this();
    connection->transport = t;
    if (metrics) {
        connection->counted_open = true;
        metrics->on_connection_open();
    }
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        open_connections.emplace(connection->id(), connection);
    }
    if (stopping.load(std::memory_order_acquire)) {
        connection->close_with(1001, "server shutdown");
        return;
    }
    connection->start();
}

inline void gateway_core::on_message(const std::shared_ptr<transport_connection>& t, frame_kind kind,
                                     protocol::bytes_view bytes) {
    auto* connection = static_cast<connection_state*>(t->context());
    if (connection) connection->on_frame(kind, bytes);
}

inline void gateway_core::on_close(const std::shared_ptr<transport_connection>& t, std::uint16_t code) {
    auto* connection = static_cast<connection_state*>(t->context());
    if (!connection) return;
    const bool park = connection->parkable(code) && options.reconnect_queue_max_bytes > 0 &&
                      !stopping.load(std::memory_order_acquire);
    if (connection->address_counted) {
        connection->address_counted = false;
        release_address(connection->remote_address());
    }
    const auto ending = connection->ending(code);
    connection->on_closed();
    if (metrics && connection->counted_open) {
        connection->counted_open = false;
        metrics->on_connection_close(connection->close_code_sent() != 0 ? connection->close_code_sent() : code);
    }
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        open_connections.erase(connection->id());
    }
    unregister(*connection, park, connection->take_held(), ending);
    connections.fetch_sub(1, std::memory_order_acq_rel);
}

inline bool gateway_core::admit_address(std::string_view address) {
    if (!options.limit_loopback_addresses && is_loopback_address(address)) return true;
    std::lock_guard<std::mutex> lock(addresses_mutex);
    auto& count = address_connections[std::string(address)];
    if (count >= options.max_connections_per_address) {
        if (count == 0) address_connections.erase(std::string(address));
        return false;
    }
    ++count;
    return true;
}

inline void gateway_core::release_address(const std::string& address) {
    if (!options.limit_loopback_addresses && is_loopback_address(address)) return;
    std::lock_guard<std::mutex> lock(addresses_mutex);
    const auto it = address_connections.find(address);
    if (it == address_connections.end()) return;
    if (--it->second == 0) address_connections.erase(it);
}

inline void gateway_core::refresh_failed(const std::error_code& ec) {
    session_refresh_failures.fetch_add(1, std::memory_order_relaxed);
    // One line a second at most: a store outage fails every session's refresh.
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now().time_since_epoch()).count();
    auto last = refresh_failure_logged.load(std::memory_order_relaxed);
    if (now - last < 1000 || !refresh_failure_logged.compare_exchange_strong(last, now)) return;
    log(log_level::warning, "session store: could not refresh a connected session (retrying; " +
                                std::to_string(session_refresh_failures.load(std::memory_order_relaxed)) +
                                " failures so far): " + ec.message());
}

inline void gateway_core::release_in_store(const std::string& session_id) {
    // Only while the record still names this node: a node that took the
    // session meanwhile has written its own id. (Not atomic: a take racing
    // this load and update can lose its id; the record then looks ended.)
    auto store_ptr = store;
    std::weak_ptr<gateway_core> weak = weak_from_this();
    store->load(session_id, [weak, store_ptr](std::error_code ec, session::session_record record) {
        auto core = weak.lock();
        if (!core || ec || record.node_id != core->queue_node) return;
        record.node_id.clear();
        store_ptr->update(std::move(record), [](std::error_code, session::session_record) {});
    });
}

inline std::size_t gateway_core::live_account_sessions_locked(const std::string& account_id,
                                                              const std::string& except) const {
    const auto it = accounts.find(account_id);
    if (it == accounts.end()) return 0;
    std::size_t live = 0;
    for (const auto& sid : it->second.sessions)
        if (sid != except && sessions.count(sid) != 0) ++live;
    return live;
}

inline std::size_t gateway_core::account_sessions(const std::string& account_id, const std::string& except) const {
    std::lock_guard<std::mutex> lock(registry_mutex);
    return live_account_sessions_locked(account_id, except);
}

inline bool gateway_core::register_session(const std::shared_ptr<connection_state>& connection,
                                           const attach_facts& facts, std::shared_ptr<connection_state>& replaced,
                                           bool& resumed, event_queue& queued,
                                           std::vector<std::shared_ptr<connection_state>>& displaced) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    // Parked sessions of the account do not count: their clients are away.
    const auto live = live_account_sessions_locked(connection->account_id, connection->session_id);
    if (live >= options.max_sessions_per_account) {
        if (options.account_session_policy != gateway_options::session_policy::replace_oldest) return false;
        // The oldest live sessions make room (the store's created_at; ties by id).
        std::vector<std::shared_ptr<connection_state>> others;
        for (const auto& sid : accounts[connection->account_id].sessions) {
            const auto it = sessions.find(sid);
            if (it != sessions.end() && sid != connection->session_id && !it->second->replaced_by_policy)
                others.push_back(it->second);
        }
        std::sort(others.begin(), others.end(), [](const auto& a, const auto& b) {
            return a->session_created != b->session_created ? a->session_created < b->session_created
                                                            : a->session_id < b->session_id;
        });
        const auto excess = others.size() + 1 - std::min(others.size() + 1, options.max_sessions_per_account);
        for (std::size_t i = 0; i < excess && i < others.size(); ++i) {
            others[i]->replaced_by_policy = true;
            displaced.push_back(others[i]);
        }
    }
    const auto was_parked = parked.find(connection->session_id);
    auto& slot = sessions[connection->session_id];
    {
        queued_session_event event;
        event.session_id = connection->session_id;
        event.account_id = connection->account_id;
        if (observer_events) event.remote_address = connection->remote_address();
        if (slot && slot != connection) {
            event.kind = session_event_kind::resumed;
            event.resumed = session_resume_kind::takeover;
        } else if (was_parked != parked.end()) {
            event.kind = session_event_kind::resumed;
            event.resumed = session_resume_kind::after_park;
        } else if (!facts.previous_node.empty() && facts.previous_node != queue_node) {
            event.kind = session_event_kind::resumed;
            event.resumed = session_resume_kind::from_other_node;
        } else {
            event.kind = session_event_kind::opened;
            event.created = facts.created;
        }
        emit(std::move(event));
    }
    // The account's shared bucket exists from its second live session here
    // on: alone, a connection's own bucket is the tighter one. Connections
    // already live get it on their own executor (a few of their messages may
    // pass before, each still within its own bucket).
    auto& account = accounts[connection->account_id];
    if (!account.bucket) {
        std::vector<std::shared_ptr<connection_state>> others;
        for (const auto& sid : account.sessions) {
            const auto it = sessions.find(sid);
            if (sid != connection->session_id && it != sessions.end() && it->second) others.push_back(it->second);
        }
        if (!others.empty()) {
            account.bucket = std::make_shared<account_bucket>();
            for (const auto& other : others)
                connection_state::post(other, [bucket = account.bucket](connection_state& c) {
                    c.share_account_bucket(bucket);
                });
        }
    }
    if (account.bucket) connection->share_account_bucket(account.bucket);
    // New to this node (not a local replacement, not a parked one back):
    // claim it in the cluster; its previous node, if any, is told to let go.
    if (!slot && was_parked == parked.end()) bus_interest(cluster::interest_kind::session, connection->session_id, true);
    if (slot && slot != connection) replaced = std::move(slot);
    slot = connection;
    if (account.sessions.empty()) bus_interest(cluster::interest_kind::account, connection->account_id, true);
    if (std::find(account.sessions.begin(), account.sessions.end(), connection->session_id) == account.sessions.end())
        account.sessions.push_back(connection->session_id);
    if (was_parked != parked.end()) {
        // The session comes back: its groups and account never left it.
        auto& queue = was_parked->second.queue;
        prune_parked_locked(was_parked->second, steady::now());
        parked_bytes -= queue.bytes();
        parked_events -= queue.size();
        queued = std::move(queue);
        parked.erase(was_parked);
        resumed = true;
        sessions_resumed.fetch_add(1, std::memory_order_relaxed);
        log(log_level::debug, "parked session resumed by a reconnection with " + std::to_string(queued.size()) +
                                  " queued events");
    }
    return true;
}

inline void gateway_core::forget_session_locked(const std::string& session_id, const std::string& account_id) {
    bus_interest(cluster::interest_kind::session, session_id, false);
    const auto account = accounts.find(account_id);
    if (account != accounts.end()) {
        auto& ids = account->second.sessions;
        const auto at = std::find(ids.begin(), ids.end(), session_id);
        if (at != ids.end()) {
            if (at != ids.end() - 1) *at = std::move(ids.back());
            ids.pop_back();
        }
        if (ids.empty()) {
            accounts.erase(account);
            bus_interest(cluster::interest_kind::account, account_id, false);
        }
    }
    const auto memberships = session_groups.find(session_id);
    if (memberships != session_groups.end()) {
        for (const auto& name : memberships->second) {
            const auto group = groups.find(name);
            if (group == groups.end()) continue;
            group->second.erase(session_id);
            if (group->second.empty()) {
                groups.erase(group);
                bus_interest(cluster::interest_kind::group, name, false);
            }
        }
        session_groups.erase(memberships);
    }
}

inline void gateway_core::bus_interest(cluster::interest_kind kind, const std::string& name, bool declare) {
    if (!bus) return;
    std::weak_ptr<gateway_core> weak = weak_from_this();
    auto done = [weak, declare](std::error_code ec) {
        // Not fatal: the bus keeps the declaration and registers it again
        // once its backend is back.
        if (!ec || ec == cluster::cluster_errc::bus_closed) return;
        if (auto core = weak.lock())
            core->log(log_level::warning, std::string("cluster: could not ") + (declare ? "declare" : "withdraw") +
                                              " interest yet: " + ec.message());
    };
    if (declare)
        bus->declare_interest(kind, name, std::move(done));
    else
        bus->withdraw_interest(kind, name, std::move(done));
}

inline void gateway_core::bus_publish(cluster::message_kind kind, std::string_view target, std::string_view payload) {
    if (!bus) return;
    cluster_published.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    bus->publish(kind, target, payload, [weak](std::error_code ec, std::size_t) {
        if (!ec) return;
        if (auto core = weak.lock()) {
            core->cluster_publish_failed.fetch_add(1, std::memory_order_relaxed);
            core->log(log_level::warning, "cluster: publish failed: " + ec.message());
        }
    });
}

inline void gateway_core::store_park(const std::string& session_id, std::vector<std::string> events) {
    // Kept for the refusal case only (another node took the session meanwhile).
    auto offered = std::make_shared<std::vector<std::string>>(events);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    queue_store->park(session_id, queue_node, std::move(events), queue_limits,
                      [weak, session_id, offered](std::error_code ec, session::queue_status status) {
                          auto core = weak.lock();
                          if (!core) return;
                          if (ec) {
                              core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
                              core->queued_events_dropped.fetch_add(offered->size(), std::memory_order_relaxed);
                              core->log(log_level::warning,
                                        "event queue store: could not park a session: " + ec.message());
                              return;
                          }
                          if (!status.queued) {
                              for (const auto& frame : *offered)
                                  core->forward_to_holder(session_id, status.holder,
                                                          std::make_shared<const std::string>(frame));
                              return;
                          }
                          core->events_stored.fetch_add(offered->size(), std::memory_order_relaxed);
                          core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
                      });
}

inline void gateway_core::store_append(const std::string& session_id, std::shared_ptr<const std::string> frame) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    const std::string_view bytes(*frame);
    queue_store->append(session_id, bytes, queue_limits,
                        [weak, session_id, frame = std::move(frame)](std::error_code ec, session::queue_status status) {
                            auto core = weak.lock();
                            if (!core) return;
                            if (ec) {
                                // not_found: no node parked it (or its window passed).
                                if (ec != session::session_errc::not_found) {
                                    core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
                                    core->log(log_level::warning,
                                              "event queue store: could not queue an event: " + ec.message());
                                }
                                core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                                return;
                            }
                            if (!status.queued) return core->forward_to_holder(session_id, status.holder, frame);
                            core->events_stored.fetch_add(1, std::memory_order_relaxed);
                            core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
                        });
}

inline void gateway_core::store_take(const std::shared_ptr<connection_state>& connection) {
    std::weak_ptr<connection_state> weak = connection;
    std::weak_ptr<gateway_core> weak_core = weak_from_this();
    queue_store->take(
        connection->session_id, queue_node, queue_limits,
        [weak, weak_core, session_id = connection->session_id](std::error_code ec, session::taken_events taken) {
            if (auto self = weak.lock()) {
                connection_state::post(self, [ec, taken = std::move(taken)](connection_state& c) mutable {
                    c.queue_taken(ec, std::move(taken));
                });
                return;
            }
            // The connection is gone already: its events go where its session went.
            auto core = weak_core.lock();
            if (!core) return;
            if (ec) core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
            core->queued_events_dropped.fetch_add(taken.dropped, std::memory_order_relaxed);
            core->taken_after_close(session_id, std::move(taken.events));
        });
}

inline void gateway_core::route_to_session(const std::string& session_id, std::shared_ptr<const std::string> frame,
                                           unsigned attempt) {
    // Attached here meanwhile (a retry): delivered, or queued behind its take.
    if (attempt > 0 && push_local_session(session_id, frame)) return;
    cluster_published.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    const std::string_view bytes(*frame);
    bus->publish(cluster::message_kind::to_session, session_id, bytes,
                 [weak, session_id, frame, attempt](std::error_code ec, std::size_t nodes) mutable {
                     auto core = weak.lock();
                     if (!core) return;
                     if (ec) core->cluster_publish_failed.fetch_add(1, std::memory_order_relaxed);
                     if (!ec && nodes == 0) core->push_unrouted(session_id, std::move(frame), attempt);
                 });
}

inline void gateway_core::retry_delivery(const std::string& session_id, std::shared_ptr<const std::string> frame,
                                         unsigned attempt) {
    if (attempt >= max_delivery_retries) {
        queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    std::weak_ptr<gateway_core> weak = weak_from_this();
    std::function<void()> again = [weak, session_id, frame = std::move(frame), attempt]() mutable {
        if (auto core = weak.lock()) core->route_to_session(session_id, std::move(frame), attempt + 1);
    };
    const std::uint32_t delay = 10u << attempt;
    std::shared_ptr<transport_connection> driver;
    {
        std::lock_guard<std::mutex> lock(timers_mutex);
        if (defer_after) return defer_after(delay, std::move(again));
        driver = timer_driver;
    }
    if (driver) return driver->post_after(delay, std::move(again));
    // Another transport, and no connection ever armed a timer on this node:
    // the store's and the bus's round trips pace the rounds instead.
    again();
}

inline void gateway_core::push_unrouted(const std::string& session_id, std::shared_ptr<const std::string> frame,
                                        unsigned attempt) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    const std::string_view bytes(*frame);
    queue_store->append(session_id, bytes, queue_limits,
                        [weak, session_id, frame, attempt](std::error_code ec, session::queue_status status) mutable {
        auto core = weak.lock();
        if (!core) return;
        if (!ec && status.queued) {
            core->events_stored.fetch_add(1, std::memory_order_relaxed);
            core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
            return;
        }
        if (!ec) {
            // Held by a node the bus did not reach. Dead: its connection is
            // gone without a park, so park the session on its behalf. Alive:
            // its declaration may still be on its way: publish again.
            // (The holder is named before it moves into the completion: the
            // order in which a call's arguments are evaluated is unspecified.)
            const std::string named = status.holder;
            core->bus->node_alive(named, [weak, session_id, frame, attempt, holder = std::move(status.holder)](
                                             std::error_code alive_ec, bool alive) mutable {
                auto core = weak.lock();
                if (!core) return;
                if (alive_ec) {
                    core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                if (alive)
                    core->forward_to_holder(session_id, holder, std::move(frame), attempt);
                else
                    core->park_for(session_id, holder, std::move(frame), attempt);
            });
            return;
        }
        if (ec != session::session_errc::not_found) {
            core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
            core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        // No queue. Only a session whose node died with its connection (so
        // never parked it) gets one: the session store names that node. A
        // session the store names a live node for (or this one) is being
        // attached there: it has not declared it on the bus or taken its
        // queue yet, and will shortly; the event tries again then. Anything
        // else (no such session, one that ended) is not queued for.
        core->store->load(session_id, [weak, session_id, frame, attempt](std::error_code load_ec,
                                                                          session::session_record record) mutable {
            auto core = weak.lock();
            if (!core) return;
            if (load_ec && load_ec != session::session_errc::not_found)
                core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
            if (load_ec || record.node_id.empty()) return;
            if (record.node_id == core->queue_node) return core->retry_delivery(session_id, std::move(frame), attempt);
            core->bus->node_alive(record.node_id, [weak, session_id, frame, attempt, node = record.node_id](
                                                      std::error_code alive_ec, bool alive) mutable {
                auto core = weak.lock();
                if (!core) return;
                if (alive_ec) {
                    core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                if (alive) return core->retry_delivery(session_id, std::move(frame), attempt);
                core->park_for(session_id, node, std::move(frame), attempt);
            });
        });
    });
}

inline void gateway_core::park_for(const std::string& session_id, const std::string& node,
                                   std::shared_ptr<const std::string> frame, unsigned attempt) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    std::vector<std::string> events{*frame};
    queue_store->park(session_id, node, std::move(events), queue_limits,
                      [weak, session_id, frame, attempt](std::error_code ec, session::queue_status status) {
                          auto core = weak.lock();
                          if (!core) return;
                          if (ec) {
                              core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
                              core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                          } else if (!status.queued) {
                              core->forward_to_holder(session_id, status.holder, frame, attempt);
                          } else {
                              core->events_stored.fetch_add(1, std::memory_order_relaxed);
                              core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
                          }
                      });
}

inline void gateway_core::taken_after_close(const std::string& session_id, std::vector<std::string> taken) {
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        const auto it = parked.find(session_id);
        if (it != parked.end() && it->second.store_park_pending) {
            auto& entry = it->second;
            entry.store_park_pending = false;
            while (!entry.queue.empty()) {
                const auto event = entry.queue.pop_front();
                parked_bytes -= event.frame->size();
                --parked_events;
                taken.emplace_back(*event.frame);
            }
            store_park(session_id, std::move(taken));
            return;
        }
    }
    // Not parked here (any more): to its live connection here, or wherever
    // it is now.
    const auto now = steady::now();
    for (auto& bytes : taken) {
        auto frame = std::make_shared<const std::string>(std::move(bytes));
        if (find_session(session_id))
            reroute_event(session_id, nullptr, queued_event{0, now, std::move(frame), true});
        else
            forward_to_holder(session_id, {}, std::move(frame));
    }
}

inline void gateway_core::forward_to_holder(const std::string& session_id, const std::string& holder,
                                            std::shared_ptr<const std::string> frame, unsigned attempt) {
    // This node holds it in the store's view (a park of ours failed, or
    // has not run yet): a park by the holder is accepted.
    if (holder == queue_node) return park_for(session_id, queue_node, std::move(frame), attempt);
    // Without a bus nobody else can hold it.
    if (!bus) {
        queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // The holder declares the session on the bus before its take, but on
    // another connection: the directory may not name it yet. Then nobody
    // receives the event, and it tries again (retry_delivery).
    cluster_published.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    bus->publish(cluster::message_kind::to_session, session_id, *frame,
                 [weak, session_id, frame, attempt](std::error_code ec, std::size_t nodes) mutable {
                     auto core = weak.lock();
                     if (!core) return;
                     if (ec) {
                         core->cluster_publish_failed.fetch_add(1, std::memory_order_relaxed);
                         core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                     } else if (nodes == 0) {
                         core->retry_delivery(session_id, std::move(frame), attempt);
                     }
                 });
}

inline void gateway_core::on_bus_message(const cluster::bus_message& m) {
    using cluster::message_kind;
    cluster_received.fetch_add(1, std::memory_order_relaxed);
    const std::string target(m.target);
    switch (m.kind) {
    case message_kind::to_session:
        push_local_session(target, std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::to_account:
        push_local_account(target, std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::to_group:
        push_local_group(target, std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::to_all:
        push_local_all(std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::revoke_session:
        kick([&](const session_keys& k) { return k.session_id == target; });
        return;
    case message_kind::revoke_account:
        kick([&](const session_keys& k) { return k.account_id == target; });
        return;
    case message_kind::session_taken: {
        // One socket per session across nodes: the session now has a
        // connection on another node. Close ours; what was queued here while
        // it was parked follows it (the directory names the new node now).
        std::vector<std::shared_ptr<const std::string>> queued;
        const auto n = kick([&](const session_keys& k) { return k.session_id == target; }, kick_kind::moved,
                            &queued);
        if (n || !queued.empty()) cluster_sessions_taken.fetch_add(1, std::memory_order_relaxed);
        for (const auto& frame : queued) bus_publish(message_kind::to_session, target, *frame);
        return;
    }
    case message_kind::to_node: {
        // Commands between gateways; anything else is counted as received only.
        const std::string_view payload = m.payload;
        if (payload.rfind(replace_command, 0) == 0) {
            const std::string sid(payload.substr(replace_command.size()));
            kick([&](const session_keys& k) { return k.session_id == sid; }, kick_kind::replaced);
        }
        return;
    }
    }
}

inline void gateway_core::replace_oldest_in_cluster(const std::string& account_id, const std::string& newcomer) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    store->list_account(account_id, [weak, newcomer](std::error_code ec, std::vector<session::session_record> records) {
        auto core = weak.lock();
        if (!core) return;
        if (ec) {
            core->log(log_level::warning, "login policy: could not list an account's sessions: " + ec.message());
            return;
        }
        // Sessions a node holds (a lifetime that ended names none), oldest first.
        records.erase(std::remove_if(records.begin(), records.end(),
                                     [](const session::session_record& r) { return r.node_id.empty(); }),
                      records.end());
        const auto cap = core->options.max_sessions_per_account;
        if (records.size() <= cap) return;
        std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
            return a.created_at != b.created_at ? a.created_at < b.created_at : a.session_id < b.session_id;
        });
        auto excess = records.size() - cap;
        for (const auto& r : records) {
            if (excess == 0) break;
            if (r.session_id == newcomer) continue;
            --excess;
            if (r.node_id == core->queue_node)
                core->kick([&](const session_keys& k) { return k.session_id == r.session_id; }, kick_kind::replaced);
            else
                core->bus_publish(cluster::message_kind::to_node, r.node_id, std::string(replace_command) + r.session_id);
        }
    });
}

inline void gateway_core::unregister(connection_state& connection, bool park, event_queue held,
                                     const session_ending& ending) {
    if (connection.session_id.empty()) return;
    std::shared_ptr<connection_state> successor;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        const auto it = sessions.find(connection.session_id);
        if (it == sessions.end() || it->second.get() != &connection) {
            // A replaced connection leaves the session (and its groups) to its
            // successor, which also gets what this one could not send.
            if (it != sessions.end()) successor = it->second;
        } else {
            sessions.erase(it);
            if (ending.moved) {
                forget_session_locked(connection.session_id, connection.account_id);
                emit(session_event_kind::moved, connection.session_id, connection.account_id, ending);
            } else if (!park) {
                forget_session_locked(connection.session_id, connection.account_id);
                emit(session_event_kind::closed, connection.session_id, connection.account_id, ending);
                release_in_store(connection.session_id);
            } else {
                const auto now = steady::now();
                auto& entry = parked[connection.session_id];
                entry = parked_session{};
                entry.session_id = connection.session_id;
                entry.account_id = connection.account_id;
                entry.token_id = connection.attached_info->identity.token_id;
                entry.session_key = connection.attached_info->identity.session_key;
                entry.until = now + options.reconnect_window;
                entry.timers = connection.transport;
                if (queue_store && connection.awaiting_queue()) {
                    // Its take has not answered: what it held waits here,
                    // to go to the store behind the taken events.
                    entry.store_park_pending = true;
                } else if (queue_store) {
                    // Under the registry lock, so that the appends queued
                    // for it from now on reach the store after the park.
                    std::vector<std::string> events;
                    events.reserve(held.size());
                    while (!held.empty()) {
                        auto event = held.pop_front();
                        if (now - event.pushed_at > options.reconnect_queue_max_age)
                            queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                        else
                            events.emplace_back(*event.frame);
                    }
                    store_park(entry.session_id, std::move(events));
                }
                while (!held.empty()) {
                    auto event = held.pop_front();
                    event.replayed = true;
                    queue_parked_locked(entry, std::move(event), now);
                }
                log(log_level::debug, "session parked for reconnection with " + std::to_string(entry.queue.size()) +
                                          " queued events");
                if (observer_events) {
                    queued_session_event event;
                    event.kind = session_event_kind::parked;
                    event.session_id = entry.session_id;
                    event.account_id = entry.account_id;
                    event.reason = ending.reason;
                    event.close_code = ending.close_code;
                    event.parked_until = std::chrono::system_clock::now() + options.reconnect_window;
                    emit(std::move(event));
                }
                arm_parked_locked(entry, entry.queue.empty()
                                             ? entry.until
                                             : std::min(entry.until, entry.queue.front().pushed_at +
                                                                         options.reconnect_queue_max_age));
                return;
            }
        }
    }
    if (!held.empty() && successor) {
        auto events = std::make_shared<event_queue>(std::move(held));
        connection_state::post(successor, [events](connection_state& c) {
            while (!events->empty()) c.deliver_event(events->pop_front());
        });
    } else if (!held.empty()) {
        queued_events_dropped.fetch_add(held.size(), std::memory_order_relaxed);
    }
}

inline void gateway_core::prune_parked_locked(parked_session& entry, steady::time_point now) {
    const auto cutoff = now - options.reconnect_queue_max_age;
    std::size_t dropped = 0;
    while (!entry.queue.empty() && entry.queue.front().pushed_at < cutoff) {
        const auto size = entry.queue.front().frame->size();
        entry.queue.pop_front();
        parked_bytes -= size;
        --parked_events;
        ++dropped;
    }
    if (dropped) {
        entry.dropped += dropped;
        queued_events_dropped.fetch_add(dropped, std::memory_order_relaxed);
    }
}

inline void gateway_core::queue_parked_locked(parked_session& entry, queued_event event, steady::time_point now) {
    if (queue_store && !entry.store_park_pending) {
        store_append(entry.session_id, std::move(event.frame));
        return;
    }
    prune_parked_locked(entry, now);
    const auto size = event.frame->size();
    const auto drop = [&](std::size_t n) {
        if (entry.dropped == 0)
            log(log_level::debug, "reconnection queue of a parked session is full; dropping events");
        entry.dropped += n;
        queued_events_dropped.fetch_add(n, std::memory_order_relaxed);
    };
    if (now - event.pushed_at > options.reconnect_queue_max_age || size > options.reconnect_queue_max_bytes) {
        drop(1);
        return;
    }
    // Per session: evict the oldest (the newest state matters most to a game
    // client). Per node: refuse the newcomer rather than steal from others.
    std::size_t evicted = 0;
    while (!entry.queue.empty() && (entry.queue.bytes() + size > options.reconnect_queue_max_bytes ||
                                    entry.queue.size() >= options.reconnect_queue_max_events)) {
        const auto old = entry.queue.front().frame->size();
        entry.queue.pop_front();
        parked_bytes -= old;
        --parked_events;
        ++evicted;
    }
    if (evicted) drop(evicted);
    if (parked_bytes + size > options.reconnect_queue_total_bytes) {
        drop(1);
        return;
    }
    const bool was_empty = entry.queue.empty();
    event.replayed = true;
    entry.queue.insert(std::move(event));
    parked_bytes += size;
    ++parked_events;
    // Aged-out events are freed by a timer too, not only when touched.
    if (was_empty) arm_parked_locked(entry, std::min(entry.until, entry.queue.front().pushed_at +
                                                                   options.reconnect_queue_max_age));
}

inline void gateway_core::arm_parked_locked(parked_session& entry, steady::time_point wake) {
    if (entry.next_wake != steady::time_point{} && entry.next_wake <= wake) return;
    entry.next_wake = wake;
    if (!entry.timers) return;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wake - steady::now()).count();
    // post_after takes 32-bit milliseconds: far wakes re-arm in steps.
    const auto delay = static_cast<std::uint32_t>(std::clamp<std::int64_t>(left + 1, 1, 24LL * 3600 * 1000));
    std::weak_ptr<gateway_core> weak = weak_from_this();
    entry.timers->post_after(delay, [weak, session_id = entry.session_id, wake] {
        if (auto core = weak.lock()) core->parked_timer(session_id, wake);
    });
}

inline void gateway_core::parked_timer(const std::string& session_id, steady::time_point wake) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    const auto it = parked.find(session_id);
    // Another timer took over, or the session is gone or back.
    if (it == parked.end() || it->second.next_wake != wake) return;
    auto& entry = it->second;
    entry.next_wake = {};
    const auto now = steady::now();
    if (now >= entry.until) {
        sessions_expired.fetch_add(1, std::memory_order_relaxed);
        const auto left = entry.queue.size();
        queued_events_dropped.fetch_add(left, std::memory_order_relaxed);
        log(log_level::debug, "parked session expired without reconnection; " +
                                  std::to_string(entry.dropped + left) + " events dropped");
        forget_parked_locked(it, session_end_reason::reconnect_window_elapsed);
        return;
    }
    prune_parked_locked(entry, now);
    arm_parked_locked(entry, entry.queue.empty() ? entry.until
                                                 : std::min(entry.until, entry.queue.front().pushed_at +
                                                                             options.reconnect_queue_max_age));
}

inline void gateway_core::forget_parked_locked(std::unordered_map<std::string, parked_session>::iterator it,
                                               session_end_reason reason, bool moved) {
    parked_bytes -= it->second.queue.bytes();
    parked_events -= it->second.queue.size();
    // Nobody else may hold this session now: it has no connection.
    if (sessions.count(it->first) == 0) {
        forget_session_locked(it->first, it->second.account_id);
        session_ending ending;
        ending.reason = reason;
        emit(moved ? session_event_kind::moved : session_event_kind::closed, it->first, it->second.account_id, ending);
        if (!moved && reason != session_end_reason::revoked) release_in_store(it->first);
    }
    parked.erase(it);
}

inline std::size_t gateway_core::target_locked(const std::string& session_id, const queued_event& event,
                                               std::vector<std::shared_ptr<connection_state>>& live) {
    const auto connected = sessions.find(session_id);
    if (connected != sessions.end()) {
        live.push_back(connected->second);
        return 1;
    }
    const auto waiting = parked.find(session_id);
    if (waiting == parked.end()) return 0;
    queue_parked_locked(waiting->second, event, steady::now());
    return 1;
}

inline void gateway_core::reroute_event(const std::string& session_id, const connection_state* from,
                                        queued_event event) {
    std::shared_ptr<connection_state> successor;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        const auto waiting = parked.find(session_id);
        if (waiting != parked.end()) {
            queue_parked_locked(waiting->second, std::move(event), steady::now());
            return;
        }
        const auto live = sessions.find(session_id);
        if (live != sessions.end() && live->second.get() != from) successor = live->second;
    }
    if (!successor) {
        queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    connection_state::post(successor, [event = std::move(event)](connection_state& c) mutable {
        c.deliver_event(std::move(event));
    });
}

inline void gateway_core::add_peer(const protocol::guid& peer, const std::shared_ptr<connection_state>& connection) {
    std::lock_guard<std::mutex> lock(peers_mutex);
    peers[peer] = connection;
}

inline void gateway_core::remove_peer(const protocol::guid& peer, const connection_state* connection) {
    std::lock_guard<std::mutex> lock(peers_mutex);
    const auto it = peers.find(peer);
    if (it == peers.end()) return;
    const auto current = it->second.lock();
    if (!current || current.get() == connection) peers.erase(it);
}

inline std::shared_ptr<connection_state> gateway_core::find_peer(const protocol::guid& peer) const {
    std::lock_guard<std::mutex> lock(peers_mutex);
    const auto it = peers.find(peer);
    return it == peers.end() ? nullptr : it->second.lock();
}

inline std::shared_ptr<connection_state> gateway_core::find_session(std::string_view session_id) const {
    std::lock_guard<std::mutex> lock(registry_mutex);
    const auto it = sessions.find(std::string(session_id));
    return it == sessions.end() ? nullptr : it->second;
}

inline void gateway_core::close_all(std::uint16_t code, std::string_view reason) {
    std::vector<std::shared_ptr<connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        for (const auto& entry : open_connections)
            if (auto c = entry.second.lock()) targets.push_back(std::move(c));
    }
    for (const auto& target : targets)
        connection_state::post(target, [code, why = std::string(reason)](connection_state& c) {
            c.mark_end(session_end_reason::node_stopping);
            c.notify_and_close(code, why, protocol::disconnect_reason::server_shutdown, code == 1001);
        });
}

template <class Predicate>
std::size_t gateway_core::kick(Predicate matches, kick_kind kind,
                               std::vector<std::shared_ptr<const std::string>>* handed_over) {
    std::vector<std::shared_ptr<connection_state>> targets;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        for (const auto& entry : sessions) {
            const auto& c = *entry.second;
            const auto& who = c.attached_info->identity;
            if (matches(session_keys{c.session_id, c.account_id, who.token_id, who.session_key}))
                targets.push_back(entry.second);
        }
        for (auto it = parked.begin(); it != parked.end();) {
            const auto current = it++;
            if (matches(session_keys{current->first, current->second.account_id, current->second.token_id,
                                     current->second.session_key})) {
                if (handed_over) {
                    // forget_parked_locked subtracts what the queue still holds.
                    auto& queue = current->second.queue;
                    parked_bytes -= queue.bytes();
                    parked_events -= queue.size();
                    while (!queue.empty()) handed_over->push_back(queue.pop_front().frame);
                } else {
                    queued_events_dropped.fetch_add(current->second.queue.size(), std::memory_order_relaxed);
                    // Revoked: what the store holds for it will never be taken.
                    if (queue_store) queue_store->discard(current->first, [](std::error_code) {});
                }
                forget_parked_locked(current, kind == kick_kind::replaced ? session_end_reason::replaced
                                                                           : session_end_reason::revoked,
                                     kind == kick_kind::moved);
            }
        }
    }
    for (const auto& target : targets)
        connection_state::post(target, [kind](connection_state& c) {
            switch (kind) {
            case kick_kind::revoked:
                c.mark_end(session_end_reason::revoked);
                c.notify_and_close(4002, "kicked", protocol::disconnect_reason::kicked, false);
                return;
            case kick_kind::replaced:
                c.mark_end(session_end_reason::replaced);
                c.notify_and_close(4002, "replaced by a newer session", protocol::disconnect_reason::kicked, false);
                return;
            case kick_kind::moved:
                c.mark_moved();
                c.notify_and_close(4002, "replaced by a connection on another node",
                                   protocol::disconnect_reason::kicked, false);
                return;
            }
        });
    return targets.size();
}

// ---------------------------------------------------------------------------
// gateway_core: timers

inline void gateway_core::schedule_wake(connection_state& c, steady::time_point at) {
    std::lock_guard<std::mutex> lock(timers_mutex);
    timers.schedule(c.timer_hook, at);
    if (!timer_driver) timer_driver = c.transport;
    arm_driver_locked(steady::now());
}

inline void gateway_core::cancel_wake(connection_state& c) noexcept {
    std::lock_guard<std::mutex> lock(timers_mutex);
    timers.cancel(c.timer_hook);
    if (timers.empty()) timers.shrink_if_sparse();
}

inline void gateway_core::arm_driver_locked(steady::time_point now) {
    if (timers.empty() || !timer_driver) return;
    const auto due = timers.next_due();
    if (timer_armed != steady::time_point{} && timer_armed <= due) return;
    timer_armed = due;
    // Rounded up to whole milliseconds (post_after's unit): never early.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(due - now).count();
    const auto delay = static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 0, 24LL * 3600 * 1000));
    std::weak_ptr<gateway_core> weak = weak_from_this();
    timer_driver->post_after(delay, [weak, due] {
        if (auto core = weak.lock()) core->timer_tick(due);
    });
}

inline void gateway_core::timer_tick(steady::time_point tick) {
    std::vector<std::shared_ptr<connection_state>> due;
    {
        std::lock_guard<std::mutex> lock(timers_mutex);
        if (timer_armed == tick) timer_armed = {};
        const auto now = steady::now();
        while (auto* c = timers.pop_due(now)) {
            // Null when the connection is being destroyed (its destructor
            // waits for this lock to disarm a hook that is gone already).
            if (auto alive = c->weak_from_this().lock()) due.push_back(std::move(alive));
        }
        arm_driver_locked(now);
    }
    for (const auto& c : due) connection_state::post(c, [](connection_state& s) { s.on_timer(); });
}

// ---------------------------------------------------------------------------
// connection_state: attach

inline void connection_state::start() {
    if (core_->options.ping_interval.count() > 0) {
        next_ping_ = steady::now() + core_->options.ping_interval;
        rearm_timer();
    }
    if (!upgrade->reconnect_token.empty()) {
        reconnecting_ = true;
        phase_ = phase::attaching;
        attach();
        return;
    }
    if (upgrade->identity_ready) {
        phase_ = phase::attaching;
        attach();
        return;
    }
    // The validator answers later; whoever comes second continues.
    bool done = false;
    {
        auto& slot = *upgrade->validation;
        std::lock_guard<std::mutex> lock(slot.mutex);
        done = slot.done;
        if (!done) slot.waiting = weak_from_this();
    }
    if (done) validated();
}

inline void connection_state::validated() {
    if (phase_ != phase::validating || closing_ || !upgrade) return;
    std::error_code error;
    {
        auto& slot = *upgrade->validation;
        std::lock_guard<std::mutex> lock(slot.mutex);
        error = slot.error;
        upgrade->identity = std::move(slot.who);
    }
    upgrade->validation.reset();
    if (error) {
        close_with(4001, "invalid credentials");
        return;
    }
    upgrade->identity_ready = true;
    phase_ = phase::attaching;
    attach();
}

inline void connection_state::attach() {
    auto& store = *core_->store;
    std::weak_ptr<connection_state> weak = weak_from_this();
    // Store completions may run inline or on any thread: come back to the
    // connection's executor before touching its state.
    // `previous_node`: the node the stored record named before this attach;
    // none: the record handed to the completion still names it.
    auto finish_as = [weak](bool existed, std::optional<std::string> previous_node) {
        return [weak, existed, previous_node = std::move(previous_node)](std::error_code ec,
                                                                          session::session_record record) {
            auto self = weak.lock();
            if (!self) return;
            connection_state::post(self, [ec, existed, previous_node,
                                          record = std::move(record)](connection_state& c) mutable {
                if (ec) {
                    c.attach_failed(ec);
                } else {
                    std::string node = previous_node ? *previous_node : record.node_id;
                    c.attached(std::move(record), existed, std::move(node));
                }
            });
        };
    };
    auto finish = finish_as(false, std::string());

    if (reconnecting_) {
        auto token = std::move(upgrade->reconnect_token);
        upgrade->reconnect_token.clear();
        store.consume_reconnect_token(token, finish_as(true, std::nullopt));
        return;
    }

    const auto& identity = upgrade->identity;
    session::session_record record;
    record.session_id = session_id_for(identity, core_->options.guid_salt);
    record.account_id = identity.subject;
    record.roles = identity.roles;
    record.permissions = identity.permissions;
    record.token_expires_at = to_session_time(identity.expires_at);
    // With a cluster, the node's id on the bus: who held the session is
    // then something other nodes can ask the bus about (node_alive).
    record.node_id = core_->queue_node;
    if (record.session_id.empty()) {
        store.create(std::move(record), std::move(finish));
        return;
    }
    // A session bound to the token: reuse it when it exists (same id after a
    // reconnect with the same token), else create it under that id.
    auto store_ptr = core_->store;
    const std::string id = record.session_id;
    store.load(id, [store_ptr, record = std::move(record), finish, finish_as](
                       std::error_code ec, session::session_record existing) mutable {
        if (ec == session::session_errc::not_found) {
            // Losing a creation race (already_exists) fails the attach: the
            // client reconnects and then finds, and checks, the winner's record.
            store_ptr->create(std::move(record), finish);
            return;
        }
        if (ec) {
            finish(ec, {});
            return;
        }
        if (existing.account_id != record.account_id) {
            finish(session::session_errc::invalid_account_id, {});
            return;
        }
        // The node it named before: another node's (it moves here) or none.
        auto finish_existing = finish_as(true, existing.node_id);
        existing.roles = std::move(record.roles);
        existing.permissions = std::move(record.permissions);
        existing.token_expires_at = record.token_expires_at;
        existing.node_id = std::move(record.node_id);
        store_ptr->update(std::move(existing), std::move(finish_existing));
    });
}

inline void connection_state::attach_failed(std::error_code error) {
    if (closing_) return;
    upgrade.reset();
    using session::session_errc;
    if (error == session_errc::revoked) {
        close_with(4002, "kicked");
    } else if (error == session_errc::not_found || error == session_errc::expired ||
               error == session_errc::token_invalid || error == session_errc::token_consumed ||
               error == session_errc::invalid_session_id || error == session_errc::invalid_account_id ||
               error == session_errc::already_exists) {
        close_with(4001, "session_expired");
    } else {
        core_->log(log_level::error, "session store failed while attaching a session: " + error.message());
        close_with(1011, "internal error");
    }
}

inline void connection_state::attached(session::session_record record, bool existed, std::string previous_node) {
    if (closing_ || phase_ != phase::attaching || !upgrade) return;
    auto& identity = upgrade->identity;
    if (reconnecting_) {
        identity = auth::identity{};
        identity.subject = record.account_id;
        identity.session_key = record.session_id;
        identity.roles = record.roles;
        identity.permissions = record.permissions;
        if (record.token_expires_at != session::time_point{}) identity.expires_at = record.token_expires_at;
    }
    session_id = record.session_id;
    account_id = record.account_id;
    session_created = record.created_at;
    const auto& timing = core_->store_timing;
    if (timing.max_lifetime.count() > 0 && record.created_at != session::time_point{})
        lifetime_end_ = record.created_at + timing.max_lifetime;

    // The identity moves into the shared session_info: one copy per
    // connection (its claims, session key...), read through attached_info.
    token_expiry_ = identity.valid_until();
    auto info = std::make_shared<routing::session_info>();
    info->session_id = session_id;
    info->account_id = account_id;
    info->identity = std::move(identity);
    info->remote_address = std::move(upgrade->remote);
    upgrade.reset();
    info->connection_id = id_;
    info_ = info;
    attached_info = std::move(info);

    std::shared_ptr<connection_state> replaced;
    bool resumed = false;
    event_queue queued;
    std::vector<std::shared_ptr<connection_state>> displaced;
    gateway_core::attach_facts facts;
    facts.created = !existed;
    facts.previous_node = std::move(previous_node);
    if (!core_->register_session(shared_from_this(), facts, replaced, resumed, queued, displaced)) {
        session_id.clear();  // not registered: nothing to unregister
        token_expiry_.reset();
        lifetime_end_.reset();
        close_with(4008, "too many sessions for this account");
        return;
    }
    for (const auto& old : displaced)
        connection_state::post(old, [](connection_state& c) {
            c.mark_end(session_end_reason::replaced);
            c.notify_and_close(4002, "replaced by a newer session", protocol::disconnect_reason::kicked, false);
        });
    if (core_->bus && core_->options.account_session_policy == gateway_options::session_policy::replace_oldest)
        core_->replace_oldest_in_cluster(account_id, session_id);
    // A reconnection token brought the session from another node: the record
    // names this node from now on (push_unrouted, presence, release_in_store).
    if (reconnecting_ && record.node_id != core_->queue_node) {
        auto stored = record;
        stored.node_id = core_->queue_node;
        core_->store->update(std::move(stored), [](std::error_code, session::session_record) {});
    }
    // Replayed after the manifest, merged in push order with anything pushed
    // since registration.
    while (!queued.empty()) held_.insert(queued.pop_front());
    // A session that may have been parked (here or on another node): its
    // queue is in the store. Anything pushed meanwhile waits behind it.
    if (core_->queue_store && (existed || resumed)) {
        awaiting_queue_ = true;
        core_->store_take(shared_from_this());
    }
    if (core_->options.peer_routing) {
        peer_guid_ = random_peer_guid();
        has_peer_ = true;
        core_->add_peer(peer_guid_, shared_from_this());
    }
    if (replaced)
        connection_state::post(replaced, [](connection_state& old) {
            old.notify_and_close(4002, "replaced by a new connection", protocol::disconnect_reason::kicked, false);
        });

    const auto& o = core_->options;
    // Roles and permissions matter only through the routes built from them:
    // a connection keeps no copy.
    routes_.rebuild(core_->registry, session_id, o.guid_salt, o.guid_order, record.roles, record.permissions);
    phase_ = phase::ready;
    // The first refresh is spread over the last quarter of the interval, so
    // that sessions attached together do not refresh together forever.
    {
        const auto interval = core_->refresh_interval;
        const auto spread = interval / 4;
        const auto offset = spread.count() > 0 ? std::chrono::milliseconds(static_cast<std::int64_t>(
                                                     id_ % static_cast<std::uint64_t>(spread.count())))
                                               : std::chrono::milliseconds(0);
        next_refresh_ = steady::now() + interval - offset;
    }
    schedule_expiry();
    manifest_reconnected_ = reconnecting_ || resumed;
    if (o.manifest_delay.count() > 0) {
        manifest_at_ = steady::now() + o.manifest_delay;
        rearm_timer();
        return;
    }
    std::weak_ptr<connection_state> weak = weak_from_this();
    transport->post([weak] {
        if (auto self = weak.lock())
            self->send_manifest(self->manifest_reconnected_ ? routing::manifest_reason::session_reconnected
                                                            : routing::manifest_reason::session_connected);
    });
}

inline void connection_state::send_manifest(std::string_view reason) {
    if (closing_) return;
    std::string json = routing::manifest_json(session_id, routes_, reason);
    if (has_peer_ && json.size() > 1 && json.back() == '}') {
        // Relayed mode (§12.1, §15): the manifest announces this connection's
        // peer GUID. Appended to the serialized object: manifest_json builds
        // the rest, and the GUID text needs no escaping.
        json.pop_back();
        json.append(",\"peerGuid\":\"").append(peer_guid_.to_string()).append("\"}");
    }
    send_frame(routing::event_frame(json));
    if (!manifest_sent_) {
        manifest_sent_ = true;
        if (!awaiting_queue_) flush_held();
    }
}

inline void connection_state::flush_held() {
    const auto cutoff = steady::now() - core_->options.reconnect_queue_max_age;
    while (!held_.empty() && !closing_) {
        auto event = held_.pop_front();
        if (event.replayed && event.pushed_at < cutoff) {
            core_->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        send_frame(protocol::bytes_view(*event.frame));
        if (event.replayed) core_->queued_events_delivered.fetch_add(1, std::memory_order_relaxed);
    }
}

inline void connection_state::deliver_event(queued_event event) {
    if (phase_ == phase::closed) {
        core_->reroute_event(session_id, this, std::move(event));
        return;
    }
    if (closing_ || !manifest_sent_ || awaiting_queue_) {
        // Bounded like the send queue it stands in for.
        if (held_.bytes() + event.frame->size() > core_->options.max_send_queue_bytes) {
            core_->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        held_.insert(std::move(event));
        return;
    }
    send_frame(protocol::bytes_view(*event.frame));
}

inline void connection_state::queue_taken(std::error_code ec, session::taken_events taken) {
    if (!awaiting_queue_) return;
    awaiting_queue_ = false;
    core_->queued_events_dropped.fetch_add(taken.dropped, std::memory_order_relaxed);
    if (ec) {
        // The events stay in the store until its retention passes; the
        // session goes on without them.
        core_->event_store_failures.fetch_add(1, std::memory_order_relaxed);
        core_->log(log_level::warning, "event queue store: could not take a resumed session's events: " + ec.message());
    }
    if (phase_ == phase::closed) {
        // Closed while the store answered: what it held was parked behind
        // this answer (store_park_pending).
        core_->taken_after_close(session_id, std::move(taken.events));
        return;
    }
    // Before anything pushed since the attach: sequence 0 sorts first, and
    // equal sequences keep their order.
    const auto now = steady::now();
    for (auto& bytes : taken.events)
        held_.insert(queued_event{0, now, std::make_shared<const std::string>(std::move(bytes)), true});
    if (manifest_sent_ && !closing_) flush_held();
}

inline bool connection_state::parkable(std::uint16_t peer_code) const noexcept {
    if (phase_ != phase::ready || session_id.empty()) return false;
    // The client left without saying goodbye (a drop, 1001 going away...):
    // it is likely to come back. 1000 means it is done with the session.
    if (server_close_code_ == 0) return peer_code != 1000;
    // Our own close: what the client will make of it (§13.2); abuse (4008)
    // does not earn a parked session.
    return server_close_code_ != 4008 && protocol::classify_close(server_close_code_).can_reconnect;
}

inline void connection_state::disconnect_by_host(std::uint16_t code, const std::string& reason) {
    mark_end(session_end_reason::kicked);
    const auto classification = protocol::classify_close(code);
    notify_and_close(code, reason, classification.reason, code != 4008 && classification.can_reconnect);
}

inline void connection_state::change_permissions(std::vector<std::string> roles, std::vector<std::string> permissions,
                                                 const std::string& reason) {
    if (closing_ || phase_ != phase::ready) return;
    const auto& o = core_->options;
    routes_.rebuild(core_->registry, session_id, o.guid_salt, o.guid_order, roles, permissions);
    send_manifest(reason);

    // Keep the store's copy in step (load-modify-update: update replaces attributes too).
    auto store = core_->store;
    auto core = core_;
    store->load(session_id, [store, core, roles = std::move(roles), permissions = std::move(permissions)](
                                std::error_code ec, session::session_record record) mutable {
        if (ec) {
            core->log(log_level::warning, "could not store changed permissions: " + ec.message());
            return;
        }
        record.roles = std::move(roles);
        record.permissions = std::move(permissions);
        store->update(std::move(record), [core](std::error_code update_ec, session::session_record) {
            if (update_ec) core->log(log_level::warning, "could not store changed permissions: " + update_ec.message());
        });
    });
}

// ---------------------------------------------------------------------------
// connection_state: sending and closing

inline bool connection_state::send_frame(protocol::bytes_view bytes) {
    if (closing_) return false;
    if (!transport->send_within(frame_kind::binary, bytes, core_->options.max_send_queue_bytes)) {
        core_->log(log_level::warning, "send queue limit exceeded; closing slow consumer with 4005");
        close_with(4005, "slow consumer");
        return false;
    }
    if (auto* m = core_->metrics) m->on_message_out(bytes.size());
    return true;
}

inline void connection_state::send_response(protocol::bytes_view bytes, protocol::response_code code) {
    if (send_frame(bytes))
        if (auto* m = core_->metrics) m->on_response(code);
}

inline void connection_state::close_with(std::uint16_t code, std::string_view reason) {
    if (closing_) return;
    closing_ = true;
    server_close_code_ = code;
    if (transport) transport->close(code, reason);
}

inline void connection_state::send_notification(std::string_view reason, const session::reconnect_token* token) {
    nlohmann::json body = {{"reason", reason}, {"reconnectable", token != nullptr}};
    if (token) {
        body["reconnectionToken"] = token->token;
        body["expiresAt"] = routing::iso8601_utc(token->expires_at);
    }
    send_frame(routing::event_frame(routing::event_json(protocol::event_names::disconnect_notification, body)));
}

inline void connection_state::notify_and_close(std::uint16_t code, std::string_view close_reason,
                                               std::string_view reason, bool reconnectable) {
    if (closing_ || notifying_) return;
    // Only an attached session can be told anything useful (§13.3, §18).
    if (phase_ != phase::ready) {
        close_with(code, close_reason);
        return;
    }
    if (!reconnectable) {
        send_notification(reason, nullptr);
        close_with(code, close_reason);
        return;
    }
    notifying_ = true;
    std::weak_ptr<connection_state> weak = weak_from_this();
    core_->store->issue_reconnect_token(
        session_id, core_->options.reconnect_window,
        [weak, code, close_reason = std::string(close_reason), reason = std::string(reason)](
            std::error_code ec, session::reconnect_token token) {
            auto self = weak.lock();
            if (!self) return;
            connection_state::post(self, [ec, code, close_reason, reason, token = std::move(token)](connection_state& c) {
                if (ec) c.core_->log(log_level::warning, "no reconnection token for a disconnect: " + ec.message());
                c.send_notification(reason, ec ? nullptr : &token);
                c.close_with(code, close_reason);
            });
        });
}

inline void connection_state::schedule_expiry() {
    // The token ends with the validator's leeway (the rule of the upgrade);
    // the session at the store's max_lifetime.
    std::optional<std::chrono::system_clock::time_point> end;
    if (token_expiry_) end = token_expiry_;
    if (lifetime_end_ && (!end || *lifetime_end_ < *end)) end = lifetime_end_;
    if (!end) {
        expiry_check_ = {};
        return;
    }
    // The expiry is wall-clock time; the check is re-armed in steps of at
    // most a day, and on_timer compares with the system clock again.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*end - std::chrono::system_clock::now());
    const auto step = std::min<std::int64_t>(std::max<std::int64_t>(left.count(), 0), 24LL * 3600 * 1000);
    expiry_check_ = steady::now() + std::chrono::milliseconds(step);
    rearm_timer();
}

inline void connection_state::refreshed(auth::identity fresh) {
    if (closing_ || phase_ != phase::ready) return;
    token_expiry_ = fresh.valid_until();
    auto info = std::make_shared<routing::session_info>(*info_);
    info->identity = std::move(fresh);
    info_ = std::move(info);
    schedule_expiry();  // never expiring now: the pending check is dropped
}

inline void connection_state::rearm_timer() {
    if (phase_ == phase::closed) return;
    steady::time_point earliest{};
    const auto consider = [&earliest](steady::time_point t) {
        if (t != steady::time_point{} && (earliest == steady::time_point{} || t < earliest)) earliest = t;
    };
    consider(manifest_at_);
    if (!closing_) consider(next_ping_);
    consider(expiry_check_);
    if (!closing_ && !refreshing_) consider(next_refresh_);
    if (!timed_calls_.empty()) consider(timed_calls_.front()->deadline());
    if (client_calls_)
        for (const auto& entry : *client_calls_) consider(entry.second.deadline);
    if (earliest == steady::time_point{}) return;  // a wake-up already requested is harmless
    if (wake_ != steady::time_point{} && wake_ <= earliest) return;
    wake_ = earliest;
    core_->schedule_wake(*this, earliest);
}

inline void connection_state::on_timer() {
    wake_ = {};
    if (phase_ == phase::closed) return;
    const auto now = steady::now();
    if (manifest_at_ != steady::time_point{} && manifest_at_ <= now) {
        manifest_at_ = {};
        send_manifest(manifest_reconnected_ ? routing::manifest_reason::session_reconnected
                                            : routing::manifest_reason::session_connected);
    }
    if (next_ping_ != steady::time_point{} && next_ping_ <= now && !closing_) {
        transport->ping(static_cast<std::uint32_t>(core_->options.pong_timeout.count()));
        next_ping_ = now + core_->options.ping_interval;
    }
    if (expiry_check_ != steady::time_point{} && expiry_check_ <= now) {
        expiry_check_ = {};
        const auto wall = std::chrono::system_clock::now();
        if (closing_) {
            // nothing left to expire
        } else if (lifetime_end_ && *lifetime_end_ <= wall) {
            mark_end(session_end_reason::max_lifetime);
            notify_and_close(4001, "max lifetime reached", protocol::disconnect_reason::session_expired, false);
        } else if (token_expiry_ && *token_expiry_ <= wall) {
            mark_end(session_end_reason::token_expired);
            notify_and_close(4001, "session expired", protocol::disconnect_reason::session_expired, false);
        } else {
            schedule_expiry();
        }
    }
    if (next_refresh_ != steady::time_point{} && next_refresh_ <= now && !closing_ && !refreshing_) refresh();
    if (!timed_calls_.empty() && timed_calls_.front()->deadline() <= now) sweep(now);
    if (!no_client_calls()) {
        std::vector<std::uint64_t> due;
        for (const auto& entry : *client_calls_)
            if (entry.second.deadline <= now) due.push_back(entry.first);
        for (const auto id : due) client_call_timed_out(id);
    }
    rearm_timer();
}

inline void connection_state::refresh() {
    refreshing_ = true;
    next_refresh_ = {};
    std::weak_ptr<connection_state> weak = weak_from_this();
    core_->store->touch(session_id, [weak](std::error_code ec) {
        auto self = weak.lock();
        if (!self) return;
        connection_state::post(self, [ec](connection_state& c) { c.refresh_answered(ec); });
    });
}

inline void connection_state::refresh_answered(std::error_code ec) {
    refreshing_ = false;
    if (closing_ || phase_ != phase::ready) return;
    using session::session_errc;
    const auto interval = core_->refresh_interval;
    if (!ec) {
        core_->session_refreshes.fetch_add(1, std::memory_order_relaxed);
        refresh_failures_ = 0;
        next_refresh_ = steady::now() + interval;
    } else if (ec == session_errc::revoked) {
        // Revoked in the store by a path that did not reach this node.
        mark_end(session_end_reason::revoked);
        notify_and_close(4002, "kicked", protocol::disconnect_reason::kicked, false);
        return;
    } else if (ec == session_errc::expired || ec == session_errc::not_found) {
        // The store ended it: its max_lifetime (a store whose timing() did
        // not say), or it was lost (expired during an outage, deleted).
        const bool lifetime = lifetime_end_ && *lifetime_end_ <= std::chrono::system_clock::now();
        mark_end(lifetime || core_->store_timing.max_lifetime.count() == 0 ? session_end_reason::max_lifetime
                                                                            : session_end_reason::store_failure);
        notify_and_close(4001, lifetime ? "max lifetime reached" : "session expired",
                         protocol::disconnect_reason::session_expired, false);
        return;
    } else {
        // Backend trouble: the connection stays; try again soon, backing off.
        core_->refresh_failed(ec);
        if (refresh_failures_ < 16) ++refresh_failures_;
        const auto backoff = std::chrono::milliseconds(1000) * (1LL << std::min<int>(refresh_failures_ - 1, 10));
        next_refresh_ = steady::now() + std::min<std::chrono::milliseconds>(backoff, interval);
    }
    rearm_timer();
}

inline session_ending connection_state::ending(std::uint16_t peer_code) const noexcept {
    session_ending e;
    const std::uint16_t transport_code = transport ? transport->transport_close_code() : 0;
    const std::uint16_t own_code = server_close_code_ != 0 ? server_close_code_ : transport_code;
    e.close_code = own_code != 0 ? own_code : peer_code;
    e.moved = moved_;
    if (core_->stopping.load(std::memory_order_acquire)) {
        e.reason = session_end_reason::node_stopping;
    } else if (has_end_reason_) {
        e.reason = end_reason_;
    } else if (own_code != 0) {
        switch (own_code) {
        case 4005: e.reason = session_end_reason::slow_consumer; break;
        case 1009:
        case 4008: e.reason = session_end_reason::protocol_violation; break;
        case 1011: e.reason = session_end_reason::store_failure; break;
        default: e.reason = session_end_reason::kicked; break;
        }
    } else if (transport && transport->heartbeat_failed()) {
        e.reason = session_end_reason::heartbeat_timeout;
    } else if (peer_code == 1006) {
        e.reason = session_end_reason::dropped;
    } else {
        e.reason = session_end_reason::client_closed;
    }
    return e;
}

inline void connection_state::on_closed() {
    closing_ = true;
    phase_ = phase::closed;
    upgrade.reset();
    if (has_peer_) core_->remove_peer(peer_guid_, this);
    fail_client_calls(core_->stopping.load(std::memory_order_acquire) ? server_errc::not_running
                                                                      : server_errc::client_call_disconnected);
    channels_.clear();
    channels_.shrink_to_fit();
    ready_.clear();
    timed_calls_.clear();
    spare_call_.reset();
    in_flight_ = 0;
    queued_ = 0;
    core_->cancel_wake(*this);
}

// ---------------------------------------------------------------------------
// connection_state: the dispatcher (PROTOCOL.md §8.2, §18)

inline void connection_state::reply_error(const protocol::frame_view& frame, protocol::response_code code) {
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = frame.channel;
    header.sequence = frame.sequence;
    header.message_id = frame.message_id;
    header.code = code;
    std::uint8_t bytes[protocol::response_header_size];
    protocol::encode_header(header, bytes);
    send_response(protocol::bytes_view(bytes, sizeof bytes), code);
}

inline void connection_state::send_text_refusal() {
    // §8.6: channel 0, the server's own sequence for channel 0 (from 1), a
    // fresh message id: the sender cannot correlate it, by design.
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = 0;
    header.sequence = ++text_sequence_;
    header.message_id = routing::new_server_message_id();
    header.code = protocol::response_code::text_protocol_not_supported;
    std::uint8_t bytes[protocol::response_header_size];
    protocol::encode_header(header, bytes);
    send_response(protocol::bytes_view(bytes, sizeof bytes), header.code);
}

inline void connection_state::on_frame(frame_kind kind, protocol::bytes_view bytes) {
    using protocol::message_flags;
    using protocol::response_code;
    if (auto* m = core_->metrics) m->on_message_in(bytes.size());
    if (closing_) return;
    if (kind == frame_kind::text) {
        send_text_refusal();
        return;
    }
    const auto& o = core_->options;
    // The transport enforces the limit on real sockets; this covers any other transport.
    if (bytes.size() > o.max_message_size) {
        close_with(1009, "message too big");
        return;
    }
    // 1. Parse; a frame without a readable header cannot be answered.
    protocol::frame_view frame;
    if (protocol::decode_frame(bytes, frame)) {
        core_->frames_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // 2. A response answers a server-to-client request (§12.3); late,
    //    duplicate or foreign ones are dropped (and counted).
    if (frame.is_response()) {
        if (!complete_client_call(frame)) core_->responses_unmatched.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // Nothing is routed before the session is attached (§18).
    if (phase_ != phase::ready) {
        reply_error(frame, response_code::service_not_found);
        return;
    }
    if (o.max_payload_size != 0 && frame.payload.size() > o.max_payload_size) {
        reply_error(frame, response_code::request_too_large);
        return;
    }
    const bool is_event = frame.has(message_flags::event);
    const bool is_meta = frame.has(message_flags::meta);
    const bool is_client = frame.has(message_flags::client);
    const auto now = steady::now();
    const auto rate_ok = [&] {
        if (!message_bucket_.take(static_cast<double>(o.message_burst),
                                  static_cast<double>(o.messages_per_minute) / 60.0, now))
            return false;
        // The account's bucket (register_session) counts only while another
        // connection holds it too (the registry's reference plus two). Alone,
        // this connection's own bucket is the tighter one (validate_options:
        // the account's rate and burst are at least the connection's), so
        // the account's could not refuse: no lock on the common path.
        if (account_bucket_ && account_bucket_.use_count() > 2 &&
            !account_bucket_->take(static_cast<double>(o.account_message_burst),
                                                      static_cast<double>(o.account_messages_per_minute) / 60.0, now)) {
            core_->account_rate_limited.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        return true;
    };
    // 4. Empty payload without Event or Meta.
    if (frame.payload.empty() && !is_event && !is_meta) {
        reply_error(frame, response_code::request_error);
        return;
    }
    // 5./6. Broadcast and peer routing (§12): counted against the rate
    // limit, then refused with 40 unless enabled (External mode).
    if (frame.service.is_broadcast() && !is_client) {
        reply_error(frame, response_code::request_error);
        return;
    }
    if (is_client) {
        if (!rate_ok()) {
            reply_error(frame, response_code::too_many_requests);
            return;
        }
        if (!o.peer_routing) {
            reply_error(frame, response_code::broadcast_not_allowed);
            return;
        }
        route_peer(frame, bytes);
        return;
    }
    const routing::endpoint* target = routes_.find(frame.service);
    if (!target) {
        reply_error(frame, response_code::service_not_found);
        return;
    }
    // 7. Channel limit.
    if (frame.channel > o.max_channel) {
        reply_error(frame, response_code::invalid_request_channel);
        return;
    }
    // 8. Meta: answered from the registration, not rate limited.
    if (is_meta) {
        const std::string body = routing::meta_json(*target, protocol::meta_type_from_channel(frame.channel));
        protocol::response_header header;
        header.flags = message_flags::response | message_flags::meta;
        header.channel = frame.channel;
        header.sequence = frame.sequence;
        header.message_id = frame.message_id;
        reply_buffer.clear();
        protocol::append_frame(reply_buffer, header, protocol::bytes_view(body));
        send_response(protocol::bytes_view(reply_buffer), header.code);
        return;
    }
    // 9. Rate limit.
    if (!rate_ok()) {
        reply_error(frame, response_code::too_many_requests);
        return;
    }
    // 10. Route.
    enqueue(frame, target, now);
}

inline void connection_state::enqueue(const protocol::frame_view& frame, const routing::endpoint* target,
                                      steady::time_point now) {
    const auto& o = core_->options;
    channel_state* found = find_channel(frame.channel);
    if (!found) {
        channels_.emplace_back();
        found = &channels_.back();
        found->id = frame.channel;
    }
    auto& channel = *found;
    if (!channel.busy && channel.waiting.empty() && in_flight_ < o.max_in_flight) {
        // Fast path: nothing ahead of it; the payload view stays valid for the call.
        channel.busy = true;
        ++in_flight_;
        const bool outer = !pumping_;
        pumping_ = true;
        invoke(target, frame.request(), frame.payload, now);
        if (outer) {
            pumping_ = false;
            pump();
        }
        return;
    }
    if (queued_ >= o.max_queued_requests) {
        if (!channel.busy && channel.waiting.empty() && !channel.in_ready) erase_channel(frame.channel);
        reply_error(frame, protocol::response_code::too_many_requests);
        return;
    }
    channel.waiting.push_back({frame.request(), target, std::string(frame.payload.as_chars())});
    ++queued_;
    if (!channel.busy && !channel.in_ready) {
        channel.in_ready = true;
        ready_.push_back(frame.channel);
    }
}

inline void connection_state::invoke(const routing::endpoint* target, const protocol::request_header& header,
                                     protocol::bytes_view payload, steady::time_point now) {
    const auto deadline = now + core_->options.handler_timeout;
    std::shared_ptr<pending_call> call;
    if (spare_call_) {
        call = std::move(spare_call_);
        call->reset(header, deadline);
    } else {
        call = std::make_shared<pending_call>(weak_from_this(), this, header, deadline);
    }
    routing::request request;
    request.session = info_;
    request.target = target;
    request.flags = header.flags;
    request.channel = header.channel;
    request.sequence = header.sequence;
    request.message_id = header.message_id;
    request.payload = payload;

    const connection_state* previous = current_connection;
    current_connection = this;
    try {
        if (target->fn)
            target->fn(request, routing::responder(call));
        else
            target->forward->async_route(request, routing::responder(call));
    } catch (const std::exception& e) {
        core_->log(log_level::error, std::string("endpoint handler threw: ") + e.what());
        call->complete(protocol::response_code::backend_internal_error, false, {});
    } catch (...) {
        core_->log(log_level::error, "endpoint handler threw a non-standard exception");
        call->complete(protocol::response_code::backend_internal_error, false, {});
    }
    current_connection = previous;
    if (call->delivered) {
        // Answered inline on this thread: when the handler kept no
        // responder, nobody else can reach the object any more.
        if (call.use_count() == 1 && phase_ != phase::closed) spare_call_ = std::move(call);
        return;
    }
    if (!closing_) {
        timed_calls_.push_back(std::move(call));
        rearm_timer();
    }
}

inline void connection_state::deliver(pending_call& call, protocol::response_code code, bool binary,
                                      protocol::bytes_view payload) {
    if (call.delivered || phase_ == phase::closed) return;
    call.delivered = true;
    if (auto* m = core_->metrics)  // dispatch time = deadline - timeout: no extra state per call
        m->on_handler_latency(steady::now() - (call.deadline() - core_->options.handler_timeout));
    const auto& header = call.header();
    // Event-flagged requests are fire-and-forget: no reply for whatever the
    // handler answered (errors of §8.2 steps 1-9 are replied before this).
    if (!protocol::has_flags(header.flags, protocol::message_flags::event)) {
        protocol::response_header reply;
        reply.flags = protocol::message_flags::response;
        if (binary && code == protocol::response_code::ok) reply.flags |= protocol::message_flags::binary;
        reply.channel = header.channel;
        reply.sequence = header.sequence;
        reply.message_id = header.message_id;
        reply.code = code;
        reply_buffer.clear();
        protocol::append_frame(reply_buffer, reply,
                               code == protocol::response_code::ok ? payload : protocol::bytes_view{});
        send_response(protocol::bytes_view(reply_buffer), code);
    }
    finish_channel(header.channel);
}

inline void connection_state::finish_channel(std::uint16_t channel_id) {
    if (phase_ == phase::closed) return;
    if (auto* channel = find_channel(channel_id)) {
        channel->busy = false;
        if (!channel->waiting.empty()) {
            if (!channel->in_ready) {
                channel->in_ready = true;
                ready_.push_back(channel_id);
            }
        } else if (!channel->in_ready) {
            erase_channel(channel_id);
        }
    }
    if (in_flight_ > 0) --in_flight_;
    if (!pumping_) pump();
}

inline void connection_state::pump() {
    if (pumping_) return;
    pumping_ = true;
    const auto max_in_flight = core_->options.max_in_flight;
    while (!ready_.empty() && in_flight_ < max_in_flight && !closing_) {
        const std::uint16_t channel_id = ready_.pop_front();
        auto* found = find_channel(channel_id);
        if (!found) continue;
        auto& channel = *found;
        channel.in_ready = false;
        if (channel.busy || channel.waiting.empty()) continue;
        queued_request next = channel.waiting.pop_front();
        --queued_;
        channel.busy = true;
        ++in_flight_;
        invoke(next.target, next.header, protocol::bytes_view(next.payload), steady::now());
    }
    pumping_ = false;
}

inline void connection_state::sweep(steady::time_point now) {
    // Deadlines grow with insertion order (one timeout for all calls).
    while (!timed_calls_.empty() && phase_ != phase::closed) {
        auto& front = timed_calls_.front();
        if (front->delivered) {
            timed_calls_.pop_front();
            continue;
        }
        if (front->deadline() > now) break;
        auto call = timed_calls_.pop_front();
        if (call->claim()) {
            core_->log(log_level::warning, "handler timed out; answered 60");
            deliver(*call, protocol::response_code::backend_internal_error, false, {});
        }
    }
}

inline void connection_state::reply_code(const protocol::request_header& request, protocol::response_code code,
                                         protocol::bytes_view payload) {
    protocol::response_header header;
    header.flags = protocol::message_flags::response;
    header.channel = request.channel;
    header.sequence = request.sequence;
    header.message_id = request.message_id;
    header.code = code;
    reply_buffer.clear();
    protocol::append_frame(reply_buffer, header,
                           code == protocol::response_code::ok ? payload : protocol::bytes_view{});
    send_response(protocol::bytes_view(reply_buffer), code);
}

// ---------------------------------------------------------------------------
// connection_state: server-to-client requests (§12.3)

inline connection_state::~connection_state() {
    core_->cancel_wake(*this);
    // Calls still pending complete with not_running as the map goes.
    if (!no_client_calls()) core_->client_calls_pending.fetch_sub(client_calls_->size(), std::memory_order_relaxed);
}

inline void connection_state::finish_client_call(const std::shared_ptr<client_call>& call, std::error_code ec,
                                                 client_reply reply) {
    call->complete(ec, std::move(reply));
    if (call->threw) {
        call->threw = false;
        core_->log(log_level::error, "a call_client completion threw; ignored");
    }
}

inline void connection_state::start_client_call(std::shared_ptr<client_call> call, const client_call_options& options,
                                                std::string payload) {
    if (closing_ || phase_ != phase::ready) {
        finish_client_call(call,
                           core_->stopping.load(std::memory_order_acquire) ? server_errc::not_running
                                                                           : server_errc::client_call_disconnected,
                           {});
        return;
    }
    if (client_calls().size() >= core_->options.max_client_calls_per_session) {
        finish_client_call(call, server_errc::too_many_client_calls, {});
        return;
    }
    // Unguessable: a peer (§12.1) must not be able to make the client answer
    // a forwarded frame with the id of a pending request.
    std::uint64_t id = 0;
    do {
        std::uint8_t random[8];
        secure_random(random, sizeof random);
        id = protocol::load_be64(random);
    } while (id == 0 || client_calls().count(id) != 0);
    client_calls().emplace(id, pending_client_call{std::move(call), steady::now() + options.timeout});
    core_->client_calls_pending.fetch_add(1, std::memory_order_relaxed);

    protocol::request_header header;
    header.flags = options.binary ? protocol::message_flags::binary : protocol::message_flags::none;
    header.channel = options.channel;
    header.sequence = 0;
    header.service = options.service;
    header.message_id = id;
    reply_buffer.clear();
    protocol::append_frame(reply_buffer, header, protocol::bytes_view(payload));
    send_frame(protocol::bytes_view(reply_buffer));  // a slow consumer closes: on_closed fails the call
    rearm_timer();
}

inline bool connection_state::complete_client_call(const protocol::frame_view& frame) {
    if (no_client_calls()) return false;
    const auto it = client_calls_->find(frame.message_id);
    if (it == client_calls_->end()) return false;
    auto call = std::move(it->second.call);
    client_calls_->erase(it);
    core_->client_calls_pending.fetch_sub(1, std::memory_order_relaxed);
    client_reply reply;
    reply.code = frame.code;
    reply.binary = frame.has(protocol::message_flags::binary);
    if (frame.code == protocol::response_code::ok) reply.payload.assign(frame.payload.as_chars());
    finish_client_call(call, {}, std::move(reply));
    return true;
}

inline void connection_state::client_call_timed_out(std::uint64_t message_id) {
    if (no_client_calls()) return;
    const auto it = client_calls_->find(message_id);
    if (it == client_calls_->end()) return;
    auto call = std::move(it->second.call);
    client_calls_->erase(it);
    core_->client_calls_pending.fetch_sub(1, std::memory_order_relaxed);
    core_->client_calls_timed_out.fetch_add(1, std::memory_order_relaxed);
    finish_client_call(call, server_errc::client_call_timeout, {});
}

inline void connection_state::fail_client_calls(std::error_code ec) {
    if (no_client_calls()) return;
    auto calls = std::move(*client_calls_);
    client_calls_.reset();
    core_->client_calls_pending.fetch_sub(calls.size(), std::memory_order_relaxed);
    for (auto& entry : calls) finish_client_call(entry.second.call, ec, {});
}

// ---------------------------------------------------------------------------
// connection_state: client-to-client routing (§12)

inline bool connection_state::accept_peer_frame(protocol::bytes_view bytes) {
    // Before its manifest a connection has not announced its peer GUID.
    if (closing_ || phase_ != phase::ready || !manifest_sent_) return false;
    send_frame(bytes);
    return !closing_;
}

inline void connection_state::peer_result(const protocol::request_header& header, const protocol::guid& target,
                                          bool delivered) {
    if (closing_) return;
    if (!delivered) {
        reply_code(header, protocol::response_code::client_not_found);
        return;
    }
    // The reference server's acknowledgement, PascalCase included (§12.1).
    std::string body = "{\"Status\":\"delivered\",\"TargetPeerGuid\":\"";
    body.append(target.to_string()).append("\",\"OriginalMessageId\":").append(std::to_string(header.message_id));
    body.push_back('}');
    reply_code(header, protocol::response_code::ok, protocol::bytes_view(body));
}

inline void connection_state::route_peer(const protocol::frame_view& frame, protocol::bytes_view bytes) {
    auto core = core_;
    // Forwarded unchanged (§12.1): the receiver learns nothing about the sender.
    auto data = std::make_shared<const std::string>(bytes.as_chars());
    if (frame.service.is_broadcast()) {
        if (!core->options.peer_broadcast) {
            reply_error(frame, protocol::response_code::broadcast_not_allowed);
            return;
        }
        std::vector<std::shared_ptr<connection_state>> targets;
        {
            std::lock_guard<std::mutex> lock(core->registry_mutex);
            targets.reserve(core->sessions.size());
            for (const auto& entry : core->sessions)
                if (entry.second.get() != this) targets.push_back(entry.second);
        }
        for (const auto& target : targets)
            connection_state::post(target, [data, core](connection_state& c) {
                if (c.accept_peer_frame(protocol::bytes_view(*data)))
                    core->peer_messages_forwarded.fetch_add(1, std::memory_order_relaxed);
            });
        return;  // no acknowledgement (§12.2)
    }
    auto target = frame.service.is_nil() ? nullptr : core->find_peer(frame.service);
    if (!target) {
        reply_error(frame, protocol::response_code::client_not_found);
        return;
    }
    const bool acknowledge = !frame.has(protocol::message_flags::event);
    std::weak_ptr<connection_state> sender = weak_from_this();
    connection_state::post(target, [data, core, sender, acknowledge, header = frame.request()](connection_state& c) {
        const bool delivered = c.accept_peer_frame(protocol::bytes_view(*data));
        if (delivered) core->peer_messages_forwarded.fetch_add(1, std::memory_order_relaxed);
        // Failed deliveries are answered 31 even to Event-flagged frames, like
        // every error of §8.2.
        if (delivered && !acknowledge) return;
        auto from = sender.lock();
        if (!from) return;
        connection_state::post(from, [header, delivered](connection_state& s) {
            s.peer_result(header, header.service, delivered);
        });
    });
}

// ---------------------------------------------------------------------------
// gateway_core: statistics and GET metrics_path

inline gateway_stats gateway_core::snapshot() const {
    gateway_stats s;
    s.connections = connections.load(std::memory_order_acquire);
    s.client_calls_pending = client_calls_pending.load(std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        s.sessions = sessions.size();
        s.parked_sessions = parked.size();
        s.queued_events = parked_events;
    }
#define GATEHOUSE_DETAIL_COUNTER_LOAD(field, exposed, help) s.field = field.load(std::memory_order_relaxed);
    GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_DETAIL_COUNTER_LOAD)
#undef GATEHOUSE_DETAIL_COUNTER_LOAD
    if (observer_events) {
#define GATEHOUSE_DETAIL_OBSERVER_LOAD(field, accessor, help) s.field = observer_events->accessor();
        GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(GATEHOUSE_DETAIL_OBSERVER_LOAD)
#undef GATEHOUSE_DETAIL_OBSERVER_LOAD
    }
    return s;
}

inline bool gateway_core::render_metrics(std::string& out) const {
    if (!metrics) return false;
    const auto s = snapshot();
    // Gauges, then the exposed counters, in table order (gateway_stats.hpp).
    struct row {
        scrape_value value;
        bool exposed;
    };
    const row all[] = {
#define GATEHOUSE_DETAIL_GAUGE_ROW(field, name, help) {{name, "gauge", help, s.field}, true},
        GATEHOUSE_GATEWAY_GAUGES(GATEHOUSE_DETAIL_GAUGE_ROW)
#undef GATEHOUSE_DETAIL_GAUGE_ROW
#define GATEHOUSE_DETAIL_COUNTER_ROW(field, exposed, help) {{#field "_total", "counter", help, s.field}, exposed},
        GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_DETAIL_COUNTER_ROW)
#undef GATEHOUSE_DETAIL_COUNTER_ROW
#define GATEHOUSE_DETAIL_OBSERVER_ROW(field, accessor, help) {{#field "_total", "counter", help, s.field}, true},
        GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(GATEHOUSE_DETAIL_OBSERVER_ROW)
#undef GATEHOUSE_DETAIL_OBSERVER_ROW
    };
    scrape_value values[sizeof all / sizeof all[0]];
    std::size_t count = 0;
    for (const auto& row : all)
        if (row.exposed) values[count++] = row.value;
    return metrics->render_exposition(out, values, count);
}

inline bool gateway_core::metrics_allowed(std::string_view remote) const {
    // Loopback by default: 127.0.0.0/8 and ::1 (IPv4-mapped addresses arrive as IPv4).
    if (options.metrics_allowed_addresses.empty()) return is_loopback_address(remote);
    return std::find(options.metrics_allowed_addresses.begin(), options.metrics_allowed_addresses.end(), remote) !=
           options.metrics_allowed_addresses.end();
}

}  // namespace gatehouse::server::detail

namespace gatehouse::server {

namespace detail {
inline void validate_options(const gateway_options& o) {
    const auto fail = [](const std::string& why) { throw std::invalid_argument("gatehouse gateway_options: " + why); };
    if (o.guid_salt.empty()) fail("guid_salt must not be empty (it salts every service GUID)");
    if (o.path.empty() || o.path.front() != '/') fail("path must start with '/'");
    if (o.path.find('?') != std::string::npos) fail("path must not contain a query");
    if (o.max_connections == 0) fail("max_connections must be at least 1");
    if (o.max_sessions_per_account == 0) fail("max_sessions_per_account must be at least 1");
    if (o.account_session_policy != gateway_options::session_policy::refuse_newest &&
        o.account_session_policy != gateway_options::session_policy::replace_oldest)
        fail("account_session_policy must be refuse_newest or replace_oldest");
    if (o.max_connections_per_address == 0) fail("max_connections_per_address must be at least 1");
    if (!(o.connects_per_second > 0)) fail("connects_per_second must be positive");
    if (o.connect_burst == 0) fail("connect_burst must be at least 1");
    if (o.manifest_delay.count() < 0) fail("manifest_delay must not be negative");
    if (o.max_message_size < protocol::request_header_size) fail("max_message_size must be at least 31 bytes");
    if (o.max_payload_size > o.max_message_size) fail("max_payload_size must not exceed max_message_size");
    if (o.messages_per_minute == 0) fail("messages_per_minute must be at least 1");
    if (o.message_burst == 0) fail("message_burst must be at least 1");
    if (o.account_messages_per_minute < o.messages_per_minute)
        fail("account_messages_per_minute must be at least messages_per_minute (it is shared by the account's "
             "sessions)");
    if (o.account_message_burst < o.message_burst) fail("account_message_burst must be at least message_burst");
    if (o.session_refresh_interval.count() < 0)
        fail("session_refresh_interval must not be negative (0: derived from the store's idle_timeout)");
    if (o.session_refresh_interval > std::chrono::hours(24)) fail("session_refresh_interval must be at most 24 hours");
    if (o.observer && (o.observer_queue_limit == 0 || o.observer_queue_limit > (std::size_t{1} << 24)))
        fail("observer_queue_limit must be 1 to 16777216");
    if (o.max_presence_results == 0 || o.max_presence_results > 100000)
        fail("max_presence_results must be 1 to 100000");
    if (o.max_in_flight == 0) fail("max_in_flight must be at least 1");
    if (o.handler_timeout.count() <= 0) fail("handler_timeout must be positive");
    if (o.ping_interval.count() < 0) fail("ping_interval must not be negative (0 disables pings)");
    if (o.ping_interval.count() > 0 && o.pong_timeout.count() <= 0) fail("pong_timeout must be positive");
    if (o.max_send_queue_bytes < o.max_message_size) fail("max_send_queue_bytes must be at least max_message_size");
    if (o.io_threads == 0 || o.io_threads > 256) fail("io_threads must be between 1 and 256");
    if (o.tls_certificate_file.empty() != o.tls_private_key_file.empty())
        fail("tls_certificate_file and tls_private_key_file must be set together");
    if (o.subprotocol_marker.empty()) fail("subprotocol_marker must not be empty");
    if (o.node_id.size() > 256) fail("node_id must be at most 256 bytes");
    if (o.reconnect_window.count() <= 0) fail("reconnect_window must be positive");
    if (o.reconnect_queue_max_bytes > 0) {
        if (o.reconnect_queue_max_events == 0) fail("reconnect_queue_max_events must be at least 1");
        if (o.reconnect_queue_max_age.count() <= 0) fail("reconnect_queue_max_age must be positive");
        if (o.reconnect_queue_total_bytes < o.reconnect_queue_max_bytes)
            fail("reconnect_queue_total_bytes must be at least reconnect_queue_max_bytes");
        // A replay is written at once, right after the manifest.
        if (o.reconnect_queue_max_bytes > o.max_send_queue_bytes / 2)
            fail("reconnect_queue_max_bytes must be at most half of max_send_queue_bytes");
    }
    if (o.event_queue_store) {
        if (o.reconnect_queue_max_bytes == 0)
            fail("event_queue_store needs parking: reconnect_queue_max_bytes must be positive");
        // The store records this node as a session's holder: the bus's id, else node_id.
        if (!o.event_bus && (o.node_id.empty() || o.node_id.size() > 64))
            fail("with event_queue_store and no event_bus, node_id must be 1 to 64 bytes");
    }
    if (o.max_client_calls_per_session == 0) fail("max_client_calls_per_session must be at least 1");
    if (o.peer_broadcast && !o.peer_routing) fail("peer_broadcast needs peer_routing");
    const auto check_http_path = [&](const std::string& value, const char* name) {
        if (value.empty()) return;
        if (value.front() != '/') fail(std::string(name) + " must start with '/' (empty disables it)");
        if (value.find('?') != std::string::npos) fail(std::string(name) + " must not contain a query");
        if (value.compare(0, o.path.size(), o.path) == 0 || o.path.compare(0, value.size(), value) == 0)
            fail(std::string(name) + " must not overlap the WebSocket path");
    };
    check_http_path(o.metrics_path, "metrics_path");
    check_http_path(o.health_path, "health_path");
    if (!o.metrics_path.empty() && o.metrics_path == o.health_path)
        fail("metrics_path and health_path must differ");
    for (const auto& address : o.metrics_allowed_addresses)
        if (address.empty()) fail("metrics_allowed_addresses must not contain an empty address");
}

/// The built-in `connect:/connect/refresh` (§18): `{"accessToken": "..."}`
/// is validated like an upgrade credential; the same account gets the new
/// expiry (and identity), anything else is answered 52.
inline void add_refresh_endpoint(const std::shared_ptr<gateway_core>& core) {
    routing::endpoint_options o;
    o.service = "connect";
    o.path = "/connect/refresh";
    o.description = "Swap in a new access token for this session: {\"accessToken\": \"...\"}";
    o.request_schema = {{"type", "object"},
                        {"required", {"accessToken"}},
                        {"properties", {{"accessToken", {{"type", "string"}}}}}};
    o.response_schema = {{"type", "object"}, {"properties", {{"expiresAt", {{"type", "string"}}}}}};
    std::weak_ptr<gateway_core> weak = core;
    core->registry.add(std::move(o), [weak](const routing::request& req, routing::responder answer) {
        auto core = weak.lock();
        if (!core) return;
        const auto body = nlohmann::json::parse(req.payload.as_chars(), nullptr, false);
        const auto token = body.is_object() ? body.find("accessToken") : body.end();
        if (!body.is_object() || token == body.end() || !token->is_string() || token->get<std::string>().empty()) {
            answer.fail(protocol::response_code::backend_bad_request);
            return;
        }
        auth::credential credential{auth::credential_kind::bearer, token->get<std::string>()};
        auto pending = std::make_shared<routing::responder>(std::move(answer));
        core->validator->async_validate(
            credential, [weak, pending, session_id = req.session->session_id,
                         account = req.session->account_id](std::error_code ec, auth::identity fresh) {
                if (ec || fresh.subject != account) {
                    pending->fail(protocol::response_code::backend_unauthorized);
                    return;
                }
                auto core = weak.lock();
                auto connection = core ? core->find_session(session_id) : nullptr;
                if (!connection) return;  // the responder answers 60 as it goes
                nlohmann::json reply = nlohmann::json::object();
                if (fresh.expires_at) reply["expiresAt"] = routing::iso8601_utc(*fresh.expires_at);
                connection_state::post(connection, [fresh = std::move(fresh)](connection_state& c) mutable {
                    c.refreshed(std::move(fresh));
                });
                pending->reply(reply.dump());
            });
    });
}

inline bool valid_group_name(std::string_view group) noexcept { return !group.empty() && group.size() <= 128; }

inline std::shared_ptr<const std::string> make_event(std::string_view event_name, const nlohmann::json& body,
                                                     std::error_code& ec) {
    if (event_name.empty()) {
        ec = server_errc::event_name_missing;
        return nullptr;
    }
    if (!body.is_null() && !body.is_object()) {
        ec = server_errc::event_body_not_object;
        return nullptr;
    }
    ec.clear();
    return std::make_shared<const std::string>(routing::event_frame(routing::event_json(event_name, body)));
}
}  // namespace detail

GATEHOUSE_DECL gateway::gateway(gateway_options options, std::shared_ptr<auth::token_validator> validator,
                                std::shared_ptr<session::session_store> store) {
    detail::validate_options(options);
    if (!validator) throw std::invalid_argument("gatehouse gateway: a token_validator is required");
    if (!store) throw std::invalid_argument("gatehouse gateway: a session_store is required");
    const auto idle = store->timing().idle_timeout;
    if (idle.count() > 0 && options.session_refresh_interval >= idle)
        throw std::invalid_argument(
            "gatehouse gateway_options: session_refresh_interval must be shorter than the session store's "
            "idle_timeout (or 0: a quarter of it)");
    core_ = std::make_shared<detail::gateway_core>(std::move(options), std::move(validator), std::move(store));
    if (core_->options.refresh_endpoint) detail::add_refresh_endpoint(core_);
    if (core_->options.observer) {
        std::weak_ptr<detail::gateway_core> weak = core_;
        core_->observer_events = std::make_unique<detail::session_event_dispatcher>(
            core_->options.observer, core_->queue_node, core_->options.observer_queue_limit,
            [weak](std::string_view line) {
                if (auto core = weak.lock()) core->log(log_level::error, line);
            });
    }
}

GATEHOUSE_DECL gateway::~gateway() {
    if (network_) {
        network_->stop();
        network_.reset();
    }
    // What the closes above reported reaches the observer before we go.
    if (core_->observer_events) core_->observer_events->shutdown();
    auth::revocation_subscription watch;
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        std::swap(watch, core_->revocation_watch);
    }
    watch.reset();
    // Connections hold the core; the registry holds connections. Break the
    // cycle for connections a transport never closed.
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        core_->sessions.clear();
        core_->accounts.clear();
        core_->groups.clear();
        core_->session_groups.clear();
        core_->open_connections.clear();
        core_->parked.clear();
        core_->parked_bytes = 0;
        core_->parked_events = 0;
    }
    std::shared_ptr<transport_connection> driver;
    {
        // Released outside the lock: the transport may hold the last
        // reference to a connection, whose destructor takes the lock.
        std::lock_guard<std::mutex> lock(core_->timers_mutex);
        driver = std::move(core_->timer_driver);
    }
    driver.reset();
    std::lock_guard<std::mutex> lock(core_->peers_mutex);
    core_->peers.clear();
}

GATEHOUSE_DECL routing::endpoint_registry& gateway::endpoints() { return core_->registry; }

GATEHOUSE_DECL const routing::endpoint& gateway::add_endpoint(routing::endpoint_options options, routing::handler fn) {
    return core_->registry.add(std::move(options), std::move(fn));
}

GATEHOUSE_DECL void gateway::add_routed_service(std::vector<routing::endpoint_options> endpoints,
                                                std::shared_ptr<routing::router> target) {
    core_->registry.add_routed(std::move(endpoints), std::move(target));
}

GATEHOUSE_DECL std::error_code gateway::listen() {
    if (!network_) network_ = detail::make_websocket_transport(core_);
    subscribe_bus();
    return network_->listen();
}

GATEHOUSE_DECL void gateway::subscribe_bus() {
    if (core_->bus && !subscribed_) {
        subscribed_ = true;
        std::weak_ptr<detail::gateway_core> weak = core_;
        core_->bus->subscribe(
            [weak](const cluster::bus_message& m) {
                if (auto core = weak.lock()) core->on_bus_message(m);
            },
            [weak](std::error_code ec) {
                // The bus keeps trying by itself: receiving starts when its
                // backend is back.
                if (!ec) return;
                if (auto core = weak.lock())
                    core->log(log_level::warning, "cluster: not receiving from the event bus yet: " + ec.message());
            });
    }
}

GATEHOUSE_DECL std::uint16_t gateway::local_port() const { return network_ ? network_->local_port() : 0; }

GATEHOUSE_DECL void gateway::run() {
    if (network_) network_->run();
}

GATEHOUSE_DECL void gateway::stop() {
    core_->stopping.store(true, std::memory_order_release);
    {
        // Nobody can come back to this node any more.
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        while (!core_->parked.empty()) {
            const auto it = core_->parked.begin();
            core_->queued_events_dropped.fetch_add(it->second.queue.size(), std::memory_order_relaxed);
            core_->forget_parked_locked(it, session_end_reason::node_stopping);
        }
    }
    if (network_)
        network_->stop();
    else
        core_->close_all(1001, "server shutdown");  // another transport: it drains itself
}

GATEHOUSE_DECL transport_events& gateway::transport_side() {
    // Another transport: the cluster's messages must reach it too.
    subscribe_bus();
    return *core_;
}

namespace detail {
/// Posts `event` to the live targets (outside the registry lock).
inline void post_event(const std::vector<std::shared_ptr<connection_state>>& live, const queued_event& event) {
    for (const auto& target : live)
        connection_state::post(target, [event](connection_state& c) mutable { c.deliver_event(std::move(event)); });
}
}  // namespace detail

namespace detail {
inline std::size_t gateway_core::push_local_session(const std::string& session_id,
                                                    std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    queued_event event;
    std::size_t targets = 0;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        event = next_event_locked(std::move(frame));
        targets = target_locked(session_id, event, live);
    }
    post_event(live, event);
    return targets;
}

inline std::size_t gateway_core::push_local_account(const std::string& account_id,
                                                    std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    queued_event event;
    std::size_t targets = 0;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        event = next_event_locked(std::move(frame));
        const auto it = accounts.find(account_id);
        if (it != accounts.end())
            for (const auto& sid : it->second.sessions) targets += target_locked(sid, event, live);
    }
    post_event(live, event);
    return targets;
}

inline std::size_t gateway_core::push_local_group(const std::string& group, std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    queued_event event;
    std::size_t targets = 0;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        event = next_event_locked(std::move(frame));
        const auto it = groups.find(group);
        if (it != groups.end())
            for (const auto& sid : it->second) targets += target_locked(sid, event, live);
    }
    post_event(live, event);
    return targets;
}

inline std::size_t gateway_core::push_local_all(std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    std::size_t targets = 0;
    queued_event event;
    {
        std::lock_guard<std::mutex> lock(registry_mutex);
        event = next_event_locked(std::move(frame));
        live.reserve(sessions.size());
        for (const auto& entry : sessions) live.push_back(entry.second);
        targets = live.size();
        const auto now = steady::now();
        for (auto& entry : parked) {
            queue_parked_locked(entry.second, event, now);
            ++targets;
        }
    }
    post_event(live, event);
    return targets;
}
}  // namespace detail

GATEHOUSE_DECL std::error_code gateway::push_to_session(std::string_view session_id, std::string_view event_name,
                                                        const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return ec;
    const std::string sid(session_id);
    if (core_->push_local_session(sid, frame)) return {};
    // Not held here: the node that holds it, if any, gets it.
    if (!core_->bus) return server_errc::session_not_found;
    if (!core_->queue_store) {
        core_->bus_publish(cluster::message_kind::to_session, sid, *frame);
        return {};
    }
    // No live node holds it: it may be parked by a node that died. Its queue
    // in the store takes the event (refused, or not_found, when it is not).
    core_->route_to_session(sid, std::move(frame), 0);
    return {};
}

GATEHOUSE_DECL std::size_t gateway::push_to_account(std::string_view account_id, std::string_view event_name,
                                                    const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    const std::string account(account_id);
    const auto targets = core_->push_local_account(account, frame);
    core_->bus_publish(cluster::message_kind::to_account, account, *frame);
    return targets;
}

GATEHOUSE_DECL std::size_t gateway::push_to_group(std::string_view group, std::string_view event_name,
                                                  const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    const std::string name(group);
    const auto targets = core_->push_local_group(name, frame);
    core_->bus_publish(cluster::message_kind::to_group, name, *frame);
    return targets;
}

GATEHOUSE_DECL std::size_t gateway::push_to_all(std::string_view event_name, const nlohmann::json& body) {
    std::error_code ec;
    auto frame = detail::make_event(event_name, body, ec);
    if (ec) return 0;
    const auto targets = core_->push_local_all(frame);
    core_->bus_publish(cluster::message_kind::to_all, {}, *frame);
    return targets;
}

GATEHOUSE_DECL std::error_code gateway::join_group(std::string_view session_id, std::string_view group) {
    if (!detail::valid_group_name(group)) return server_errc::invalid_group_name;
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const std::string sid(session_id);
    if (core_->sessions.count(sid) == 0 && core_->parked.count(sid) == 0) return server_errc::session_not_found;
    const std::string name(group);
    auto& members = core_->groups[name];
    if (members.empty()) core_->bus_interest(cluster::interest_kind::group, name, true);
    members.insert(sid);
    core_->session_groups[sid].insert(name);
    return {};
}

GATEHOUSE_DECL std::error_code gateway::leave_group(std::string_view session_id, std::string_view group) {
    if (!detail::valid_group_name(group)) return server_errc::invalid_group_name;
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const std::string sid(session_id);
    if (core_->sessions.count(sid) == 0 && core_->parked.count(sid) == 0) return server_errc::session_not_found;
    const std::string name(group);
    const auto it = core_->groups.find(name);
    if (it != core_->groups.end()) {
        it->second.erase(sid);
        if (it->second.empty()) {
            core_->groups.erase(it);
            core_->bus_interest(cluster::interest_kind::group, name, false);
        }
    }
    const auto memberships = core_->session_groups.find(sid);
    if (memberships != core_->session_groups.end()) {
        memberships->second.erase(name);
        if (memberships->second.empty()) core_->session_groups.erase(memberships);
    }
    return {};
}

GATEHOUSE_DECL std::vector<std::string> gateway::group_members(std::string_view group) const {
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const auto it = core_->groups.find(std::string(group));
    if (it == core_->groups.end()) return {};
    std::vector<std::string> members(it->second.begin(), it->second.end());
    std::sort(members.begin(), members.end());
    return members;
}

namespace detail {
/// This node's sessions of `account_id`, at most `limit`. Registry lock held.
inline void local_presence_locked(const gateway_core& core, const std::string& account_id, std::size_t limit,
                                  std::vector<session_presence>& out) {
    const auto it = core.accounts.find(account_id);
    if (it == core.accounts.end()) return;
    for (const auto& sid : it->second.sessions) {
        if (out.size() >= limit) return;
        session_presence p;
        p.session_id = sid;
        p.account_id = account_id;
        p.node_id = core.queue_node;
        const auto live = core.sessions.find(sid);
        if (live != core.sessions.end()) {
            p.where = session_presence::state::connected;
            p.remote_address = live->second->attached_info->remote_address;
        } else if (core.parked.count(sid) != 0) {
            p.where = session_presence::state::parked;
        } else {
            continue;
        }
        out.push_back(std::move(p));
    }
}

inline bool valid_presence_limit(const gateway_options& o, std::size_t limit) noexcept {
    return limit >= 1 && limit <= o.max_presence_results;
}
}  // namespace detail

GATEHOUSE_DECL std::vector<session_presence> gateway::local_sessions(std::string_view account_id,
                                                                     std::size_t limit) const {
    std::vector<session_presence> out;
    if (!detail::valid_presence_limit(core_->options, limit)) return out;
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    detail::local_presence_locked(*core_, std::string(account_id), limit, out);
    return out;
}

GATEHOUSE_DECL std::optional<session_presence> gateway::local_session(std::string_view session_id) const {
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const std::string sid(session_id);
    session_presence p;
    p.session_id = sid;
    p.node_id = core_->queue_node;
    if (const auto live = core_->sessions.find(sid); live != core_->sessions.end()) {
        p.account_id = live->second->account_id;
        p.remote_address = live->second->attached_info->remote_address;
        p.where = session_presence::state::connected;
        return p;
    }
    if (const auto waiting = core_->parked.find(sid); waiting != core_->parked.end()) {
        p.account_id = waiting->second.account_id;
        p.where = session_presence::state::parked;
        return p;
    }
    return std::nullopt;
}

GATEHOUSE_DECL bool gateway::online_here(std::string_view account_id) const {
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    return core_->accounts.count(std::string(account_id)) != 0;
}

GATEHOUSE_DECL std::size_t gateway::group_size(std::string_view group) const {
    std::lock_guard<std::mutex> lock(core_->registry_mutex);
    const auto it = core_->groups.find(std::string(group));
    return it == core_->groups.end() ? 0 : it->second.size();
}

GATEHOUSE_DECL void gateway::account_presence(std::string_view account_id, presence_handler done, std::size_t limit) {
    if (!done) return;
    if (!detail::valid_presence_limit(core_->options, limit)) {
        done(server_errc::invalid_limit, {});
        return;
    }
    const std::string account(account_id);
    auto found = std::make_shared<std::vector<session_presence>>();
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        detail::local_presence_locked(*core_, account, limit, *found);
    }
    if (!core_->bus || found->size() >= limit) {
        done({}, std::move(*found));
        return;
    }
    // The other nodes' sessions: the shared store names the node holding
    // each one (a lifetime that ended names none); the bus says which of
    // those nodes are alive.
    std::weak_ptr<detail::gateway_core> weak = core_;
    core_->store->list_account(account, [weak, found, limit, done = std::move(done)](
                                            std::error_code ec, std::vector<session::session_record> records) mutable {
        auto core = weak.lock();
        if (!core || ec) {
            done(core ? ec : make_error_code(server_errc::not_running), std::move(*found));
            return;
        }
        struct pending_query {
            std::vector<session_presence> result;
            std::vector<session_presence> candidates;
            std::size_t waiting = 0;
            std::size_t limit = 0;
            std::error_code error;
            std::mutex mutex;
            presence_handler done;
        };
        auto query = std::make_shared<pending_query>();
        query->result = std::move(*found);
        query->limit = limit;
        query->done = std::move(done);
        std::sort(records.begin(), records.end(),
                  [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
        std::vector<std::string> nodes;
        for (auto& r : records) {
            if (r.node_id.empty() || r.node_id == core->queue_node) continue;
            session_presence p;
            p.session_id = std::move(r.session_id);
            p.account_id = std::move(r.account_id);
            p.node_id = r.node_id;
            p.where = session_presence::state::held;
            query->candidates.push_back(std::move(p));
            if (std::find(nodes.begin(), nodes.end(), r.node_id) == nodes.end()) nodes.push_back(r.node_id);
        }
        if (nodes.empty()) {
            query->done({}, std::move(query->result));
            return;
        }
        auto alive = std::make_shared<std::vector<std::string>>();
        query->waiting = nodes.size();
        for (const auto& node : nodes) {
            core->bus->node_alive(node, [query, alive, node](std::error_code alive_ec, bool is_alive) {
                std::unique_lock<std::mutex> lock(query->mutex);
                if (alive_ec)
                    query->error = alive_ec;
                else if (is_alive)
                    alive->push_back(node);
                if (--query->waiting != 0) return;
                for (auto& c : query->candidates) {
                    if (query->result.size() >= query->limit) break;
                    if (std::find(alive->begin(), alive->end(), c.node_id) != alive->end())
                        query->result.push_back(std::move(c));
                }
                auto finish = std::move(query->done);
                auto result = std::move(query->result);
                const auto error = query->error;
                lock.unlock();
                finish(error, std::move(result));
            });
        }
    });
}

GATEHOUSE_DECL std::error_code gateway::set_permissions(std::string_view session_id, std::vector<std::string> roles,
                                                        std::vector<std::string> permissions, std::string_view reason) {
    auto target = core_->find_session(session_id);
    if (!target) {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        return core_->parked.count(std::string(session_id)) ? server_errc::session_parked
                                                            : server_errc::session_not_found;
    }
    detail::connection_state::post(target, [roles = std::move(roles), permissions = std::move(permissions),
                                            reason = std::string(reason)](detail::connection_state& c) mutable {
        c.change_permissions(std::move(roles), std::move(permissions), reason);
    });
    return {};
}

GATEHOUSE_DECL std::error_code gateway::disconnect(std::string_view session_id, std::uint16_t code,
                                                   std::string_view reason) {
    auto target = core_->find_session(session_id);
    if (!target) {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        const auto it = core_->parked.find(std::string(session_id));
        if (it == core_->parked.end()) return server_errc::session_not_found;
        core_->queued_events_dropped.fetch_add(it->second.queue.size(), std::memory_order_relaxed);
        core_->forget_parked_locked(it, session_end_reason::kicked);
        return {};
    }
    detail::connection_state::post(target, [code, why = std::string(reason.substr(0, 123))](
                                               detail::connection_state& c) { c.disconnect_by_host(code, why); });
    return {};
}

GATEHOUSE_DECL std::error_code gateway::call_client(std::string_view session_id, std::string payload,
                                                    client_call_handler done, client_call_options options) {
    if (options.timeout.count() < 1 || options.timeout > std::chrono::hours(24)) return server_errc::invalid_timeout;
    if (payload.size() > core_->options.max_message_size - protocol::request_header_size)
        return server_errc::payload_too_large;
    if (core_->stopping.load(std::memory_order_acquire)) return server_errc::not_running;
    std::shared_ptr<detail::connection_state> target;
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        const std::string sid(session_id);
        const auto it = core_->sessions.find(sid);
        if (it == core_->sessions.end())
            return core_->parked.count(sid) ? server_errc::session_parked : server_errc::session_not_found;
        target = it->second;
    }
    auto call = std::make_shared<detail::client_call>(std::move(done));
    detail::connection_state::post(target, [call = std::move(call), options, payload = std::move(payload)](
                                               detail::connection_state& c) mutable {
        c.start_client_call(std::move(call), options, std::move(payload));
    });
    return {};
}

GATEHOUSE_DECL void gateway::revoke_session(std::string_view session_id, std::function<void(std::error_code)> done) {
    const std::string sid(session_id);
    auto core = core_;
    core_->store->revoke(sid, [core, sid, done = std::move(done)](std::error_code ec) {
        // Close even when the store failed or already had it revoked: the
        // host asked for this session to be gone.
        core->kick([&](const detail::session_keys& k) { return k.session_id == sid; });
        core->bus_publish(cluster::message_kind::revoke_session, sid, {});
        if (done) done(ec);
    });
}

GATEHOUSE_DECL void gateway::revoke_account(std::string_view account_id,
                                           std::function<void(std::error_code, std::size_t)> done) {
    const std::string account(account_id);
    auto core = core_;
    core_->store->revoke_account(account, [core, account, done = std::move(done)](std::error_code ec, std::size_t n) {
        core->kick([&](const detail::session_keys& k) { return k.account_id == account; });
        core->bus_publish(cluster::message_kind::revoke_account, account, {});
        if (done) done(ec, n);
    });
}

GATEHOUSE_DECL void gateway::watch_revocations(std::shared_ptr<auth::revocation_list> list) {
    auth::revocation_subscription subscription;
    if (list) {
        std::weak_ptr<detail::gateway_core> weak = core_;
        subscription = list->subscribe([weak](const auth::revocation& entry) {
            auto core = weak.lock();
            if (!core || entry.value.empty()) return;
            core->kick([&](const detail::session_keys& k) {
                switch (entry.scope) {
                case auth::revocation_scope::token: return k.token_id == entry.value;
                case auth::revocation_scope::session:
                    return k.session_key == entry.value || k.session_id == entry.value;
                case auth::revocation_scope::account: return k.account_id == entry.value;
                }
                return false;
            });
        });
    }
    // The old subscription ends outside the lock: ending it waits for a
    // running listener, which takes the lock.
    {
        std::lock_guard<std::mutex> lock(core_->registry_mutex);
        std::swap(core_->revocation_watch, subscription);
    }
    subscription.reset();
}

GATEHOUSE_DECL gateway_stats gateway::stats() const { return core_->snapshot(); }

GATEHOUSE_DECL bool gateway::metrics_exposition(std::string& out) const { return core_->render_metrics(out); }

GATEHOUSE_DECL const gateway_options& gateway::options() const noexcept { return core_->options; }

}  // namespace gatehouse::server
