// redis_event_bus: a cluster::event_bus over Redis (asynchronous on the
// host's Asio executor; replies parsed by hiredis's reader, 0.14 or 1.x).
// Every gateway node of a cluster points one redis_event_bus, with its own
// node id, at the same Redis.
//
// Which Redis mechanism carries what, and why:
// - Targeted traffic (to_node, to_session, to_account, revoke_session,
//   revoke_account, session_taken) goes to a per-node STREAM, P n:{node},
//   appended by a Lua script that looks the target up in the directory (one
//   round trip, atomic) and skips nodes whose heartbeat has expired. Streams
//   because these messages matter one by one (a revocation must not vanish,
//   a pushed event is for one player): a node whose connection drops for a
//   moment reads on from the last entry it saw, so nothing is lost across a
//   brief disconnect. Each stream is capped (XADD MAXLEN ~ stream_max_length)
//   and expires stream_retention after its last write or heartbeat: a node
//   away for longer than that, or with more than that many messages pending,
//   loses the oldest. Such a loss is detected and counted (stream_gaps,
//   stream_messages_lost), never silent: see "Loss detection" below.
// - Group traffic and to_all go over PUB/SUB: channel P g:{group} per group,
//   P all for everyone. A node SUBSCRIBEs to a group's channel while it
//   declares the group, so Redis itself sends group traffic only to
//   interested nodes, with one PUBLISH whatever the number of receivers and
//   no per-group bookkeeping in Redis. Messages published while a node's
//   subscriber connection is down are not delivered to it: broadcasts are
//   best-effort (chat, lobby updates), and per-node streams for them would
//   cost one write per node per message.
//
// Key schema (P = key_prefix, default "gatehouse:bus:"):
//   P hb:{node}      string   the node's incarnation; TTL heartbeat_ttl,
//                             refreshed every heartbeat_interval: the node is
//                             alive while it exists
//   P n:{node}       stream   targeted messages for the node (field "e": the
//                             envelope); MAXLEN ~ stream_max_length, TTL
//                             stream_retention
//   P s:{session}    string   the node that declared the session (the
//                             latest declaration wins and tells the previous
//                             live holder: session_taken)
//   P a:{account}    set      the nodes that declared the account
//   P g:{group}, P all        pub/sub channels (not keys)
// Directory entries of a node that died are left in place and pruned by the
// next publish that finds the node's heartbeat gone. The scripts touch keys
// they compute from arguments: standalone Redis (or a primary with
// replicas), not Redis Cluster.
//
// Connections (three per node, all on one strand of the executor given):
// one for commands and publishing, one subscribed to the pub/sub channels,
// one reading the node's stream (blocked in XREAD, or a checked read, see
// below). Redis requires the subscriber connection to do nothing else, and a
// blocking XREAD must not hold up publishes.
//
// Loss detection (targeted traffic). The reader keeps, besides last_id_,
// how many entries of its stream lie at or before last_id_ (read, or counted
// lost). Redis 7.0 counts every entry ever added to a stream (XINFO STREAM
// entries-added; trimming does not lower it, and max-deleted-entry-id moves
// with XDEL only, not with MAXLEN trimming). When the reader has read to the
// end of the stream, entries-added minus its own count is exactly what was
// trimmed before it read it. These numbers and the entries after last_id_
// come from one Lua script (XINFO STREAM + XRANGE, atomic: no write falls in
// between), a "checked read", which replaces an XREAD (and counts a gap
// before it delivers the entries it read) only:
// - after every (re)connection of the reader: trimmed, expired or deleted
//   while it was away;
// - after a read that returned min(read_batch, stream_max_length) entries or
//   more: a blocked XREAD is woken by one write, so a batch that large means
//   the reader was behind (a slow handler, a busy strand), and after MAXLEN ~
//   n a stream still holds n entries or more, so a read that jumped over
//   trimmed entries is always that large (assuming every node of the cluster
//   has the same stream_max_length). Checked reads go on until the reader has
//   caught up, then it reconciles the counts;
// - when the heartbeat's PEXPIRE of the stream answers 0 (the key is gone)
//   after the reader had read from it: it expired while this node was away
//   (stream_retention), was deleted, or Redis restarted without it. A reader
//   waiting in XREAD on a vanished key notices after at most read_block.
// So the hot path (a caught-up reader woken one entry at a time) costs
// nothing more; a checked read costs an EVAL whose XINFO STREAM copies the
// stream's first and last entries. A vanished stream counts one gap (its
// unread content is unknown: stream_messages_lost is a lower bound) and
// the reader reads the next stream under the key from its first entry; a
// stream found replaced by another (entries-added below the reader's count)
// counts one gap and is not reconciled until the reader catches up. Losses
// are counted, never repaired; delivery stays at most once. The bus has no
// logger: a host watches stats() (a stream_gaps rise means targeted messages,
// revocations included, may have been lost: a cautious host re-checks its
// sessions' validity). Before Redis 7.0 (no entries-added) only vanished
// streams are detected; where EVAL is refused (an ACL) checked reads fail,
// are counted as bad_replies, and the reader goes on unchecked.
//
// Failure: the bus connects by itself and reconnects after a loss (backoff
// between reconnect_delay_min and reconnect_delay_max). While the command
// connection is down, publish, declare, withdraw and node_alive fail at once
// with bus_unavailable; a command without an answer after command_timeout
// fails with timeout and the connections are re-established. Declarations
// are kept locally and registered again after every reconnection (so they
// also survive a Redis restart without persistence); a session another live
// node declared meanwhile is reported to the handler as session_taken.
//
// Threading: as event_bus.hpp says; the handler and every completion run on
// the bus's strand. Lifetime: destroy (or close()) the bus before its
// io_context; close() deletes the heartbeat and the node's directory entries
// (best effort), so other nodes see it gone at once rather than after
// heartbeat_ttl.
//
// Requires Redis 6.2 or later (XADD ... MAXLEN ~, SET ... PX, XRANGE with an
// exclusive start), and 7.0 or later to count trimmed messages.
#pragma once

#include <gatehouse/adapters/redis/detail/connection_options.hpp>
#include <gatehouse/cluster/event_bus.hpp>
#include <gatehouse/detail/config.hpp>

#include <asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace gatehouse::adapters::redis {

/// Connection options (host, port, password, database, command_timeout,
/// reconnect delays): see detail/connection_options.hpp. host may be a host
/// name, resolved (asynchronously) on every (re)connect. Pub/sub ignores
/// databases: separate deployments on one Redis need separate key_prefix
/// values.
struct redis_event_bus_options : detail::connection_options {
    /// This node's id: [A-Za-z0-9._:-], 1..64 characters, unique in the cluster.
    std::string node_id;
    /// Prepended to every key and channel.
    std::string key_prefix = "gatehouse:bus:";
    /// The heartbeat key is refreshed this often ...
    std::chrono::milliseconds heartbeat_interval{1000};
    /// ... and expires this long after the last refresh: a node that
    /// crashed is no longer alive (and its sessions may be taken over) after
    /// at most this long. More than heartbeat_interval.
    std::chrono::milliseconds heartbeat_ttl{3000};
    /// How long one XREAD waits for new entries before it is issued again.
    std::chrono::milliseconds read_block{1000};
    /// Entries taken per XREAD.
    std::size_t read_batch = 256;
    /// Approximate cap on a node's pending targeted messages.
    std::size_t stream_max_length = 10000;
    /// A node's stream expires this long after its last write or heartbeat.
    std::chrono::milliseconds stream_retention{60000};
    /// (origin, message id) pairs remembered for duplicate suppression.
    std::size_t duplicate_window = 65536;
    /// Largest payload accepted by publish and on receipt.
    std::size_t max_payload_size = 64 * 1024;
};

namespace detail {
class redis_bus_core;
}  // namespace detail

class redis_event_bus final : public cluster::event_bus {
public:
    /// Joins the cluster at once (connecting asynchronously). Throws
    /// std::invalid_argument for invalid options (start-up configuration).
    GATEHOUSE_DECL redis_event_bus(const asio::any_io_executor& executor, redis_event_bus_options options);
    GATEHOUSE_DECL ~redis_event_bus() override;

    redis_event_bus(const redis_event_bus&) = delete;
    redis_event_bus& operator=(const redis_event_bus&) = delete;

    GATEHOUSE_DECL std::string_view node_id() const noexcept override;
    GATEHOUSE_DECL void subscribe(message_handler handler, done_completion done) override;
    GATEHOUSE_DECL void publish(cluster::message_kind kind, std::string_view target, std::string_view payload,
                                publish_completion done) override;
    GATEHOUSE_DECL void declare_interest(cluster::interest_kind kind, std::string_view name,
                                         done_completion done) override;
    GATEHOUSE_DECL void withdraw_interest(cluster::interest_kind kind, std::string_view name,
                                          done_completion done) override;
    GATEHOUSE_DECL void node_alive(std::string_view node, alive_completion done) override;
    GATEHOUSE_DECL cluster::event_bus_stats stats() const override;
    GATEHOUSE_DECL void close() override;

private:
    /// post, not dispatch: completions never run inline within the call.
    template <class Operation>
    void run(Operation&& op);

    GATEHOUSE_DECL void reject(done_completion done);
    GATEHOUSE_DECL static bool valid_interest(cluster::interest_kind kind, std::string_view name);
    GATEHOUSE_DECL static redis_event_bus_options validated(redis_event_bus_options o);

    std::shared_ptr<detail::redis_bus_core> core_;
    std::shared_ptr<std::atomic<std::uint64_t>> message_ids_;
};

}  // namespace gatehouse::adapters::redis

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/adapters/redis/impl/redis_event_bus.ipp>
#endif
