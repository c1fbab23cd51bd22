// The receiving side every built-in bus shares: decode, drop own echoes,
// suppress duplicates, check the node's declared interests, count, deliver.
// Used on one strand only (the bus's); the counters are atomics so that
// stats() may be read from any thread.
#pragma once

#include <gatehouse/cluster/duplicate_window.hpp>
#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/event_bus.hpp>
#include <gatehouse/detail/random.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace gatehouse::cluster::detail {

struct atomic_stats {
    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> publish_failed{0};
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::atomic<std::uint64_t> malformed{0};
    std::atomic<std::uint64_t> incompatible_version{0};
    std::atomic<std::uint64_t> not_interested{0};
    std::atomic<std::uint64_t> own_messages{0};
    std::atomic<std::uint64_t> no_handler{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> bad_replies{0};
    std::atomic<std::uint64_t> heartbeat_lapses{0};
    std::atomic<std::uint64_t> stream_gaps{0};
    std::atomic<std::uint64_t> stream_messages_lost{0};

    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by = 1) noexcept {
        c.fetch_add(by, std::memory_order_relaxed);
    }

    event_bus_stats snapshot() const noexcept {
        event_bus_stats s;
        s.published = published.load(std::memory_order_relaxed);
        s.publish_failed = publish_failed.load(std::memory_order_relaxed);
        s.delivered = delivered.load(std::memory_order_relaxed);
        s.duplicates = duplicates.load(std::memory_order_relaxed);
        s.malformed = malformed.load(std::memory_order_relaxed);
        s.incompatible_version = incompatible_version.load(std::memory_order_relaxed);
        s.not_interested = not_interested.load(std::memory_order_relaxed);
        s.own_messages = own_messages.load(std::memory_order_relaxed);
        s.no_handler = no_handler.load(std::memory_order_relaxed);
        s.reconnects = reconnects.load(std::memory_order_relaxed);
        s.bad_replies = bad_replies.load(std::memory_order_relaxed);
        s.heartbeat_lapses = heartbeat_lapses.load(std::memory_order_relaxed);
        s.stream_gaps = stream_gaps.load(std::memory_order_relaxed);
        s.stream_messages_lost = stream_messages_lost.load(std::memory_order_relaxed);
        return s;
    }
};

/// The names a node declared, per interest kind.
class interest_set {
public:
    bool contains(interest_kind kind, std::string_view name) const {
        const auto& s = of(kind);
        return s.find(name) != s.end();
    }
    /// True when newly added.
    bool add(interest_kind kind, std::string_view name) { return mutable_of(kind).emplace(name).second; }
    /// True when it was there.
    bool remove(interest_kind kind, std::string_view name) {
        auto& s = mutable_of(kind);
        auto it = s.find(name);
        if (it == s.end()) return false;
        s.erase(it);
        return true;
    }
    const std::set<std::string, std::less<>>& of(interest_kind kind) const {
        return kind == interest_kind::session ? sessions_ : kind == interest_kind::account ? accounts_ : groups_;
    }
    void clear() {
        sessions_.clear();
        accounts_.clear();
        groups_.clear();
    }

private:
    std::set<std::string, std::less<>>& mutable_of(interest_kind kind) {
        return kind == interest_kind::session ? sessions_ : kind == interest_kind::account ? accounts_ : groups_;
    }
    std::set<std::string, std::less<>> sessions_;
    std::set<std::string, std::less<>> accounts_;
    std::set<std::string, std::less<>> groups_;
};

/// The backend path a message came by (for backends with several).
enum class arrival {
    any,        ///< one path for everything (memory bus)
    targeted,   ///< the node's own queue: node, session, account kinds
    broadcast,  ///< the everyone channel: to_all only
    group,      ///< a group's channel: to_group for that group only
};

class inbound {
public:
    inbound(std::string node_id, std::size_t window, std::size_t payload_limit, atomic_stats& stats)
        : node_id_(std::move(node_id)), window_(window), payload_limit_(payload_limit), stats_(stats) {}

    interest_set& interests() noexcept { return interests_; }
    const std::string& node_id() const noexcept { return node_id_; }

    /// Runs one received envelope through the checks and, when it passes,
    /// the handler. Returns true when the handler was called.
    bool receive(std::string_view bytes, const event_bus::message_handler& handler, arrival path = arrival::any,
                 std::string_view channel_group = {}) {
        envelope_view e;
        if (const auto ec = decode_envelope(bytes, e, payload_limit_)) {
            if (ec == cluster_errc::envelope_version_obsolete || ec == cluster_errc::envelope_version_unknown)
                atomic_stats::bump(stats_.incompatible_version);
            else
                atomic_stats::bump(stats_.malformed);
            return false;
        }
        // A backend path carries only its own kinds: anything else was put
        // there by something that is not a gatehouse bus.
        if (!fits(path, e, channel_group)) {
            atomic_stats::bump(stats_.malformed);
            return false;
        }
        if (e.origin == node_id_) {
            atomic_stats::bump(stats_.own_messages);
            return false;
        }
        if (e.kind == message_kind::to_node && e.target != node_id_) {
            atomic_stats::bump(stats_.not_interested);
            return false;
        }
        interest_kind needed{};
        if (interest_of(e.kind, needed) && !interests_.contains(needed, e.target)) {
            atomic_stats::bump(stats_.not_interested);
            return false;
        }
        if (!window_.first_time(e.origin, e.message_id)) {
            atomic_stats::bump(stats_.duplicates);
            return false;
        }
        // The directory now names another node: this one no longer holds it.
        if (e.kind == message_kind::session_taken) interests_.remove(interest_kind::session, e.target);
        if (!handler) {
            atomic_stats::bump(stats_.no_handler);
            return false;
        }
        atomic_stats::bump(stats_.delivered);
        handler(bus_message{e.kind, e.target, e.payload, e.origin, e.message_id});
        return true;
    }

private:
    static bool fits(arrival path, const envelope_view& e, std::string_view channel_group) noexcept {
        switch (path) {
        case arrival::any: return true;
        case arrival::targeted: return e.kind != message_kind::to_group && e.kind != message_kind::to_all;
        case arrival::broadcast: return e.kind == message_kind::to_all;
        case arrival::group: return e.kind == message_kind::to_group && e.target == channel_group;
        }
        return false;
    }

    std::string node_id_;
    interest_set interests_;
    duplicate_window window_;
    std::size_t payload_limit_;
    atomic_stats& stats_;
};

/// A random 64-bit start for a node's message ids: a node restarted under
/// the same id does not collide with its previous incarnation's ids still in
/// the receivers' duplicate windows.
inline std::uint64_t random_message_id_start() {
    std::uint64_t start = 0;
    gatehouse::detail::random_bytes(&start, sizeof start);
    return start;
}

}  // namespace gatehouse::cluster::detail
