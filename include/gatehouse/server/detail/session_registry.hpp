// The session registry: this node's live sessions, their accounts and
// groups, its open connections, and its parked sessions (§13.4), under one
// mutex so that a push reaches live and parked sessions in one order.
//
// The registry owns its state and its lock; nothing reaches the state
// without a registry_lock, so "which lock guards this" is a type. It knows
// nothing of the store, the bus or the transport: what the cluster must
// hear (an account or a group here gained its first or lost its last
// session) is handed to the caller's callables, which run under the lock
// and must not call out (the bus only records interest or posts).
//
// `Connection` is the gateway's connection_state; the unit tests use a
// small stand-in with session_id, account_id and attached_remote_address()
// (readable from any thread once the connection is registered).
#pragma once

#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/server/detail/event_queue.hpp>
#include <gatehouse/server/detail/rate_limits.hpp>
#include <gatehouse/server/session_presence.hpp>
#include <gatehouse/server/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

/// One account's sessions on this node (live or parked) and their shared
/// message bucket (made when a second session goes live). A vector, not a
/// set: most accounts have one session, and a one-element unordered_set
/// costs ~250 bytes (bucket array and node) on every idle session.
struct account_entry {
    std::vector<std::string> sessions;
    std::shared_ptr<account_bucket> bucket;
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

/// The registry's state. Reachable only through a registry_lock.
template <class Connection>
struct registry_state {
    std::unordered_map<std::string, std::shared_ptr<Connection>> sessions;
    /// Account -> its sessions here (live or parked) and their bucket.
    std::unordered_map<std::string, account_entry> accounts;
    std::unordered_map<std::string, std::unordered_set<std::string>> groups;
    std::unordered_map<std::string, std::unordered_set<std::string>> session_groups;
    std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> open_connections;
    std::unordered_map<std::string, parked_session> parked;
    std::size_t parked_bytes = 0;  ///< queued for all parked sessions
    std::size_t parked_events = 0;
    std::uint64_t push_sequence = 0;
    auth::revocation_subscription revocation_watch;
};

template <class Connection>
class session_registry;

/// The registry's mutex, held: the only way to its state. Functions that
/// must run under it take one as proof.
template <class Connection>
class basic_registry_lock {
public:
    registry_state<Connection>* operator->() const noexcept { return state_; }
    registry_state<Connection>& operator*() const noexcept { return *state_; }

private:
    friend class session_registry<Connection>;
    basic_registry_lock(std::mutex& mutex, registry_state<Connection>& state) : lock_(mutex), state_(&state) {}
    std::unique_lock<std::mutex> lock_;
    registry_state<Connection>* state_;
};

/// What a membership change tells the cluster link.
enum class membership : std::uint8_t { account, group };

template <class Connection>
class session_registry {
public:
    using lock_type = basic_registry_lock<Connection>;
    using connection_ptr = std::shared_ptr<Connection>;

    /// Takes the mutex. Never held across a call out (the store, the bus's
    /// completions, the host's handlers).
    lock_type lock() const { return lock_type(mutex_, state_); }

    // --- under a lock the caller holds ---

    /// Live (not parked) sessions of an account, not counting `except`.
    static std::size_t live_account_sessions(const lock_type& reg, const std::string& account_id,
                                             const std::string& except) {
        const auto it = reg->accounts.find(account_id);
        if (it == reg->accounts.end()) return 0;
        std::size_t live = 0;
        for (const auto& sid : it->second.sessions)
            if (sid != except && reg->sessions.count(sid) != 0) ++live;
        return live;
    }
    /// Live or parked here.
    static bool holds(const lock_type& reg, const std::string& session_id) {
        return reg->sessions.count(session_id) != 0 || reg->parked.count(session_id) != 0;
    }
    /// A pushed event with the next sequence number: one push order for
    /// parked queues and live connections.
    static queued_event next_event(const lock_type& reg, std::shared_ptr<const std::string> frame) {
        return queued_event{++reg->push_sequence, steady::now(), std::move(frame), false};
    }
    /// `session_id` leaves its account and its groups (it is no longer
    /// live or parked here). `emptied(membership, name)` is called for the
    /// account and each group this leaves without sessions.
    template <class Emptied>
    static void forget_memberships(const lock_type& reg, const std::string& session_id,
                                   const std::string& account_id, Emptied&& emptied) {
        const auto account = reg->accounts.find(account_id);
        if (account != reg->accounts.end()) {
            auto& ids = account->second.sessions;
            const auto at = std::find(ids.begin(), ids.end(), session_id);
            if (at != ids.end()) {
                if (at != ids.end() - 1) *at = std::move(ids.back());
                ids.pop_back();
            }
            if (ids.empty()) {
                reg->accounts.erase(account);
                emptied(membership::account, account_id);
            }
        }
        const auto memberships = reg->session_groups.find(session_id);
        if (memberships == reg->session_groups.end()) return;
        for (const auto& name : memberships->second) {
            const auto group = reg->groups.find(name);
            if (group == reg->groups.end()) continue;
            group->second.erase(session_id);
            if (group->second.empty()) {
                reg->groups.erase(group);
                emptied(membership::group, name);
            }
        }
        reg->session_groups.erase(memberships);
    }
    /// Adds a session held here (live or parked) to `group`; `first()` runs
    /// when the group is new here. False: the session is not held here.
    template <class First>
    static bool join_group(const lock_type& reg, const std::string& session_id, const std::string& group,
                           First&& first) {
        if (!holds(reg, session_id)) return false;
        auto& members = reg->groups[group];
        if (members.empty()) first();
        members.insert(session_id);
        reg->session_groups[session_id].insert(group);
        return true;
    }
    /// Takes a session held here out of `group` (nothing when it is not a
    /// member); `emptied()` runs when the group has no session left here.
    /// False: the session is not held here.
    template <class Emptied>
    static bool leave_group(const lock_type& reg, const std::string& session_id, const std::string& group,
                            Emptied&& emptied) {
        if (!holds(reg, session_id)) return false;
        const auto it = reg->groups.find(group);
        if (it != reg->groups.end()) {
            it->second.erase(session_id);
            if (it->second.empty()) {
                reg->groups.erase(it);
                emptied();
            }
        }
        const auto memberships = reg->session_groups.find(session_id);
        if (memberships != reg->session_groups.end()) {
            memberships->second.erase(group);
            if (memberships->second.empty()) reg->session_groups.erase(memberships);
        }
        return true;
    }
    /// Appends this node's sessions of `account_id` (connected or parked)
    /// to `out` until it holds `limit`.
    static void presence(const lock_type& reg, const std::string& account_id, const std::string& node_id,
                         std::size_t limit, std::vector<session_presence>& out) {
        const auto it = reg->accounts.find(account_id);
        if (it == reg->accounts.end()) return;
        for (const auto& sid : it->second.sessions) {
            if (out.size() >= limit) return;
            session_presence p;
            p.session_id = sid;
            p.account_id = account_id;
            p.node_id = node_id;
            const auto live = reg->sessions.find(sid);
            if (live != reg->sessions.end()) {
                p.where = session_presence::state::connected;
                p.remote_address = live->second->attached_remote_address();
            } else if (reg->parked.count(sid) != 0) {
                p.where = session_presence::state::parked;
            } else {
                continue;
            }
            out.push_back(std::move(p));
        }
    }

    // --- each takes the lock itself ---

    connection_ptr find(std::string_view session_id) const {
        const auto reg = lock();
        const auto it = reg->sessions.find(std::string(session_id));
        return it == reg->sessions.end() ? nullptr : it->second;
    }
    std::size_t account_sessions(const std::string& account_id, const std::string& except) const {
        const auto reg = lock();
        return live_account_sessions(reg, account_id, except);
    }
    /// One session held here: connected or parked, on `node_id`.
    std::optional<session_presence> presence_of(const std::string& session_id, const std::string& node_id) const {
        const auto reg = lock();
        session_presence p;
        p.session_id = session_id;
        p.node_id = node_id;
        if (const auto live = reg->sessions.find(session_id); live != reg->sessions.end()) {
            p.account_id = live->second->account_id;
            p.remote_address = live->second->attached_remote_address();
            p.where = session_presence::state::connected;
            return p;
        }
        if (const auto waiting = reg->parked.find(session_id); waiting != reg->parked.end()) {
            p.account_id = waiting->second.account_id;
            p.where = session_presence::state::parked;
            return p;
        }
        return std::nullopt;
    }
    /// The account has a session here (live or parked).
    bool holds_account(const std::string& account_id) const {
        const auto reg = lock();
        return reg->accounts.count(account_id) != 0;
    }
    /// The group's sessions here, sorted.
    std::vector<std::string> group_members(const std::string& group) const {
        const auto reg = lock();
        const auto it = reg->groups.find(group);
        if (it == reg->groups.end()) return {};
        std::vector<std::string> members(it->second.begin(), it->second.end());
        std::sort(members.begin(), members.end());
        return members;
    }
    std::size_t group_size(const std::string& group) const {
        const auto reg = lock();
        const auto it = reg->groups.find(group);
        return it == reg->groups.end() ? 0 : it->second.size();
    }
    /// An open connection (attached or not), until untrack_open.
    void track_open(std::uint64_t id, const connection_ptr& connection) {
        const auto reg = lock();
        reg->open_connections.emplace(id, connection);
    }
    void untrack_open(std::uint64_t id) {
        const auto reg = lock();
        reg->open_connections.erase(id);
    }
    /// Every live session's connection but `except`'s (a broadcast).
    std::vector<connection_ptr> live_connections(const Connection* except = nullptr) const {
        std::vector<connection_ptr> out;
        const auto reg = lock();
        out.reserve(reg->sessions.size());
        for (const auto& entry : reg->sessions)
            if (entry.second.get() != except) out.push_back(entry.second);
        return out;
    }
    /// The open connections still alive (attached or not).
    std::vector<connection_ptr> open_connections() const {
        std::vector<connection_ptr> out;
        const auto reg = lock();
        out.reserve(reg->open_connections.size());
        for (const auto& entry : reg->open_connections)
            if (auto c = entry.second.lock()) out.push_back(std::move(c));
        return out;
    }
    /// Forgets everything but the revocation watch (the gateway's
    /// destructor: connections hold the core, the registry holds
    /// connections). Returns the connections, to be released by the caller
    /// outside the lock (their destructors may take it).
    std::vector<connection_ptr> clear() {
        std::vector<connection_ptr> released;
        const auto reg = lock();
        released.reserve(reg->sessions.size());
        for (auto& entry : reg->sessions) released.push_back(std::move(entry.second));
        reg->sessions.clear();
        reg->accounts.clear();
        reg->groups.clear();
        reg->session_groups.clear();
        reg->open_connections.clear();
        reg->parked.clear();
        reg->parked_bytes = 0;
        reg->parked_events = 0;
        return released;
    }

private:
    mutable std::mutex mutex_;
    mutable registry_state<Connection> state_;
};

}  // namespace gatehouse::server::detail
