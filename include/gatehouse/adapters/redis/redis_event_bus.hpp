// redis_event_bus: a cluster::event_bus over Redis (hiredis 0.14 or 1.x,
// asynchronous, driven by the host's Asio executor). Every gateway node of a
// cluster points one redis_event_bus, with its own node id, at the same Redis.
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
#include <gatehouse/adapters/redis/detail/hiredis_asio.hpp>
#include <gatehouse/adapters/redis/detail/script_sha1.hpp>
#include <gatehouse/cluster/detail/inbound.hpp>
#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/event_bus.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::adapters::redis {

/// Connection options (host, port, password, database, command_timeout,
/// reconnect delays): see detail/connection_options.hpp. host must be an IP
/// address here (hiredis resolves names with a blocking getaddrinfo on every
/// reconnect, on the executor's thread). Pub/sub ignores databases: separate
/// deployments on one Redis need separate key_prefix values.
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

using cluster::cluster_errc;

/// A reply Redis sent as an error: WRONGTYPE means a key holds a value of
/// another type (a reply of the wrong shape); anything else (OOM, READONLY,
/// NOAUTH, script errors) is a backend error.
inline std::error_code bus_error_of(const redisReply* reply) noexcept {
    if (reply->type != REDIS_REPLY_ERROR) return {};
    if (reply->str != nullptr && std::strstr(reply->str, "WRONGTYPE") != nullptr) return cluster_errc::bad_reply;
    return cluster_errc::backend_error;
}

inline std::string_view bus_text_of(const redisReply* reply) noexcept { return {reply->str, reply->len}; }

inline std::string ms_arg(std::chrono::milliseconds d) { return std::to_string(std::max<long long>(1, d.count())); }

// Targeted publish. ARGV: prefix, mode (n = node, s = session, a = account),
// target, self, envelope, maxlen, retention ms. Returns the number of nodes
// the envelope was appended for. Entries naming a node whose heartbeat is
// gone are pruned on the way.
inline constexpr const char* bus_route_script = R"lua(
local p, mode, target, self, env, maxlen, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local function send(node)
  if node == self then return 0 end
  if redis.call('EXISTS', p .. 'hb:' .. node) == 0 then return -1 end
  local s = p .. 'n:' .. node
  redis.call('XADD', s, 'MAXLEN', '~', maxlen, '*', 'e', env)
  redis.call('PEXPIRE', s, keep)
  return 1
end
if mode == 'n' then
  if send(target) == 1 then return 1 end
  return 0
elseif mode == 's' then
  local key = p .. 's:' .. target
  local holder = redis.call('GET', key)
  if not holder then return 0 end
  local r = send(holder)
  if r == -1 then redis.call('DEL', key) end
  if r == 1 then return 1 end
  return 0
end
local key = p .. 'a:' .. target
local n = 0
for _, node in ipairs(redis.call('SMEMBERS', key)) do
  local r = send(node)
  if r == 1 then n = n + 1 elseif r == -1 then redis.call('SREM', key, node) end
end
return n
)lua";

// Declares a session. ARGV: prefix, session, self, session_taken envelope,
// maxlen, retention ms, mode ('claim': take it over; 'reclaim': after a
// reconnection, only when no other live node holds it). Returns 0 when
// claimed, or the live node that holds it for 'reclaim'. On a take-over the
// previous live holder is sent the session_taken envelope.
inline constexpr const char* bus_claim_script = R"lua(
local p, session, self, env, maxlen, keep, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local key = p .. 's:' .. session
local holder = redis.call('GET', key)
if holder == self then return 0 end
local live = holder and redis.call('EXISTS', p .. 'hb:' .. holder) == 1
if live and mode == 'reclaim' then return holder end
redis.call('SET', key, self)
if live then
  local s = p .. 'n:' .. holder
  redis.call('XADD', s, 'MAXLEN', '~', maxlen, '*', 'e', env)
  redis.call('PEXPIRE', s, keep)
end
return 0
)lua";

// The reader's checked read: the stream's bookkeeping and the entries after
// the reader's position, in one atomic step (no write can fall between the
// numbers and the entries). KEYS[1] = the stream, ARGV: last id read, count
// (0: the numbers only). Returns {0} when the stream does not exist, else
// {1, entries-added (-1 before Redis 7.0), length, first entry id,
// last generated id, entries}. XINFO STREAM is O(1) but copies the first and
// last entries: this runs only on the occasions listed in the header comment.
inline constexpr const char* bus_checked_read_script = R"lua(
local s = KEYS[1]
if redis.call('EXISTS', s) == 0 then return {0} end
local info = redis.call('XINFO', 'STREAM', s)
local added, len, first, last = -1, 0, '0-0', '0-0'
for i = 1, #info - 1, 2 do
  local k = info[i]
  if k == 'entries-added' then added = info[i + 1]
  elseif k == 'length' then len = info[i + 1]
  elseif k == 'recorded-first-entry-id' then first = info[i + 1]
  elseif k == 'last-generated-id' then last = info[i + 1] end
end
local entries = {}
if ARGV[2] ~= '0' then entries = redis.call('XRANGE', s, '(' .. ARGV[1], '+', 'COUNT', ARGV[2]) end
return {1, added, len, first, last, entries}
)lua";

/// A stream entry id, ms-seq, ordered as Redis orders them.
struct stream_id {
    std::uint64_t ms = 0, seq = 0;
    friend bool operator<(const stream_id& a, const stream_id& b) noexcept {
        return a.ms != b.ms ? a.ms < b.ms : a.seq < b.seq;
    }
};

/// False for text that is not an id.
inline bool parse_stream_id(std::string_view text, stream_id& out) noexcept {
    auto number = [](std::string_view digits, std::uint64_t& value) {
        if (digits.empty() || digits.size() > 20) return false;
        std::uint64_t v = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return false;
            const auto d = static_cast<std::uint64_t>(c - '0');
            if (v > (UINT64_MAX - d) / 10) return false;
            v = v * 10 + d;
        }
        value = v;
        return true;
    };
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) return number(text, out.ms) && ((out.seq = 0), true);
    return number(text.substr(0, dash), out.ms) && number(text.substr(dash + 1), out.seq);
}

// Withdraws a session while the directory still names this node.
// KEYS[1] = the session's key, ARGV[1] = self.
inline constexpr const char* bus_release_script = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";


/// One hiredis connection: connects, reconnects with backoff, times
/// commands out. Used on one strand only. Its owner learns about it through
/// hooks, which the owner clears before it goes away.
class bus_link : public std::enable_shared_from_this<bus_link> {
public:
    using strand_type = asio::strand<asio::any_io_executor>;
    using reply_handler = std::function<void(std::error_code, redisReply*)>;
    struct hooks {
        std::function<void()> up;
        /// `stuck`: a command timed out (Redis alive but not answering).
        std::function<void(bool stuck)> down;
        /// Pub/sub pushes (subscribe confirmations and messages).
        std::function<void(redisReply*)> push;
    };

    bus_link(const strand_type& strand, const redis_event_bus_options& options, std::string name)
        : strand_(strand),
          options_(options),
          name_(std::move(name)),
          timeout_timer_(strand_),
          reconnect_timer_(strand_),
          backoff_(options_.reconnect_delay_min) {}

    ~bus_link() {
        // Only reached with a context when the io_context died first.
        if (context_ != nullptr) {
            for (auto& cmd : pending_) cmd->finished = true;
            auto* c = std::exchange(context_, nullptr);
            c->data = nullptr;
            redisAsyncFree(c);
        }
    }

    void set_hooks(hooks h) { hooks_ = std::move(h); }
    bool up() const noexcept { return up_; }
    bool closed() const noexcept { return closed_; }

    void start() { connect(); }

    /// Final: pending commands fail with bus_closed, no reconnection.
    void close() {
        if (closed_) return;
        closed_ = true;
        hooks_ = {};
        reconnect_timer_.cancel();
        timeout_timer_.cancel();
        fail_all(cluster_errc::bus_closed);
        drop();
    }

    /// Final, after the commands already sent have been answered (or have
    /// timed out).
    void close_after_pending() {
        if (closed_) return;
        closed_ = true;
        hooks_ = {};
        reconnect_timer_.cancel();
        if (context_ == nullptr) return;
        up_ = false;
        redisAsyncDisconnect(context_);  // may free the context inside
    }

    /// Drops the connection (if any) and connects again after the backoff.
    void reset(bool stuck) {
        if (closed_) return;
        fail_all(stuck ? cluster_errc::timeout : cluster_errc::bus_unavailable);
        const bool had = context_ != nullptr;
        drop();
        if (had) {
            notify_down(stuck);
            schedule_reconnect();
        }
    }

    /// Fails at once with bus_unavailable while not connected.
    void send(const std::string_view* args, std::size_t count, reply_handler handler,
              std::chrono::milliseconds timeout) {
        if (closed_) return handler(cluster_errc::bus_closed, nullptr);
        if (!up_) return handler(cluster_errc::bus_unavailable, nullptr);
        send_now(args, count, std::move(handler), timeout);
    }

    void command(std::initializer_list<std::string_view> args, reply_handler handler) {
        send(args.begin(), args.size(), std::move(handler), options_.command_timeout);
    }

    /// SUBSCRIBE / UNSUBSCRIBE: the answers arrive through hooks.push.
    bool send_pubsub(const std::vector<std::string>& args) {
        if (closed_ || context_ == nullptr || !up_) return false;
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        argv.reserve(args.size());
        lengths.reserve(args.size());
        for (const auto& a : args) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        return redisAsyncCommandArgv(context_, &bus_link::on_push, nullptr, static_cast<int>(args.size()),
                                     argv.data(), lengths.data()) == REDIS_OK;
    }

private:
    struct pending_command {
        reply_handler handler;
        std::chrono::steady_clock::time_point deadline;
        bool finished = false;
    };

    /// Also while connecting: hiredis sends once connected.
    void send_now(const std::string_view* args, std::size_t count, reply_handler handler,
                  std::chrono::milliseconds timeout) {
        if (context_ == nullptr) return handler(cluster_errc::bus_unavailable, nullptr);
        constexpr std::size_t max_args = 16;
        if (count > max_args) return handler(cluster_errc::backend_error, nullptr);
        std::array<const char*, max_args> argv{};
        std::array<std::size_t, max_args> lengths{};
        for (std::size_t i = 0; i < count; ++i) {
            argv[i] = args[i].data();
            lengths[i] = args[i].size();
        }
        auto cmd = std::make_unique<pending_command>();
        cmd->handler = std::move(handler);
        cmd->deadline = std::chrono::steady_clock::now() + timeout;
        if (redisAsyncCommandArgv(context_, &bus_link::on_reply, cmd.get(), static_cast<int>(count), argv.data(),
                                  lengths.data()) != REDIS_OK)
            return cmd->handler(cluster_errc::bus_unavailable, nullptr);
        pending_.push_back(std::move(cmd));
        arm_timeout();
    }

    void setup_command(std::initializer_list<std::string_view> args) {
        send_now(args.begin(), args.size(), [](std::error_code, redisReply*) {}, options_.command_timeout);
    }

    static void on_reply(redisAsyncContext* context, void* reply, void* privdata) {
        auto* self = static_cast<bus_link*>(context->data);
        if (self == nullptr) return;
        self->complete(static_cast<pending_command*>(privdata), static_cast<redisReply*>(reply));
    }

    static void on_push(redisAsyncContext* context, void* reply, void*) {
        auto* self = static_cast<bus_link*>(context->data);
        if (self == nullptr || reply == nullptr || context != self->context_ || !self->hooks_.push) return;
        self->hooks_.push(static_cast<redisReply*>(reply));
    }

    void complete(pending_command* cmd, redisReply* reply) {
        auto it = std::find_if(pending_.begin(), pending_.end(), [cmd](const auto& p) { return p.get() == cmd; });
        if (it == pending_.end()) return;
        auto owned = std::move(*it);
        pending_.erase(it);
        // Nothing left to time: do not keep the io_context busy until the
        // old deadline (a closing bus would hold its io_context that long).
        if (pending_.empty() && timeout_armed_) timeout_timer_.cancel();
        if (owned->finished) return;
        if (reply == nullptr) {
            // The connection is going away inside hiredis: complete outside
            // it, so that the completion may issue new commands.
            asio::post(strand_, [handler = std::move(owned->handler)] {
                handler(cluster_errc::bus_unavailable, nullptr);
            });
            return;
        }
        owned->handler({}, reply);
    }

    void fail_all(cluster_errc why) {
        for (auto& cmd : pending_) {
            if (cmd->finished) continue;
            cmd->finished = true;
            asio::post(strand_, [handler = std::move(cmd->handler), why] { handler(why, nullptr); });
        }
    }

    void arm_timeout() {
        if (timeout_armed_ || pending_.empty()) return;
        auto oldest = std::find_if(pending_.begin(), pending_.end(), [](const auto& p) { return !p->finished; });
        if (oldest == pending_.end()) return;
        timeout_armed_ = true;
        timeout_timer_.expires_at((*oldest)->deadline);
        timeout_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            self->timeout_armed_ = false;
            // Cancelled: commands sent meanwhile still need a deadline.
            if (ec) return self->arm_timeout();
            self->check_timeouts();
        });
    }

    void check_timeouts() {
        auto oldest = std::find_if(pending_.begin(), pending_.end(), [](const auto& p) { return !p->finished; });
        if (oldest == pending_.end()) return;
        if ((*oldest)->deadline > std::chrono::steady_clock::now()) return arm_timeout();
        // Redis answers in order: a stuck command means a stuck connection.
        if (closed_) {
            fail_all(cluster_errc::timeout);
            drop();
            return;
        }
        reset(true);
    }

    void drop() {
        up_ = false;
        if (context_ == nullptr) return;
        for (auto& cmd : pending_) cmd->finished = true;
        auto* c = std::exchange(context_, nullptr);
        redisAsyncFree(c);  // runs the remaining callbacks with no reply; they are finished
    }

    void notify_down(bool stuck) {
        if (hooks_.down) hooks_.down(stuck);
    }

    void connect() {
        if (closed_ || context_ != nullptr) return;
        redisAsyncContext* c = redisAsyncConnect(options_.host.c_str(), options_.port);
        if (c == nullptr) return schedule_reconnect();
        if (c->err != 0 || !hiredis_asio_binding::attach(c, strand_)) {
            redisAsyncFree(c);
            notify_down(false);
            return schedule_reconnect();
        }
        c->data = this;
        context_ = c;
        redisAsyncSetDisconnectCallback(c, &bus_link::on_disconnect);
        redisAsyncSetConnectCallback(c, &bus_link::on_connect);
        // Sent ahead of everything else; their answers come first.
        if (!options_.password.empty()) setup_command({"AUTH", options_.password});
        if (options_.database != 0) setup_command({"SELECT", std::to_string(options_.database)});
        setup_command({"CLIENT", "SETNAME", name_});
    }

    static void on_connect(const redisAsyncContext* context, int status) {
        auto* self = static_cast<bus_link*>(context->data);
        if (self == nullptr || context != self->context_) return;
        if (status == REDIS_OK) {
            self->up_ = true;
            self->backoff_ = self->options_.reconnect_delay_min;
            if (self->hooks_.up) self->hooks_.up();
            return;
        }
        // hiredis frees the context after this callback.
        self->context_ = nullptr;
        self->up_ = false;
        self->notify_down(false);
        self->schedule_reconnect();
    }

    static void on_disconnect(const redisAsyncContext* context, int) {
        auto* self = static_cast<bus_link*>(context->data);
        if (self == nullptr || context != self->context_) return;  // we dropped it ourselves
        self->context_ = nullptr;
        self->up_ = false;
        if (self->closed_) return;
        self->notify_down(false);
        self->schedule_reconnect();
    }

    void schedule_reconnect() {
        if (closed_) return;
        reconnect_timer_.expires_after(backoff_);
        backoff_ = std::min(backoff_ * 2, options_.reconnect_delay_max);
        reconnect_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            if (!ec) self->connect();
        });
    }

    strand_type strand_;
    redis_event_bus_options options_;  // a copy: the link may outlive its owner
    std::string name_;
    hooks hooks_;
    asio::steady_timer timeout_timer_;
    asio::steady_timer reconnect_timer_;
    std::chrono::milliseconds backoff_;
    redisAsyncContext* context_ = nullptr;
    std::deque<std::unique_ptr<pending_command>> pending_;
    bool up_ = false;
    bool timeout_armed_ = false;
    bool closed_ = false;
};

class redis_bus_core : public std::enable_shared_from_this<redis_bus_core> {
public:
    using strand_type = bus_link::strand_type;
    using event_bus = cluster::event_bus;
    using interest_kind = cluster::interest_kind;
    using message_kind = cluster::message_kind;

    redis_bus_core(const asio::any_io_executor& executor, redis_event_bus_options options)
        : strand_(asio::make_strand(executor)),
          options_(std::move(options)),
          inbound_(options_.node_id, options_.duplicate_window, options_.max_payload_size, stats_),
          heartbeat_timer_(strand_),
          ready_timer_(strand_),
          incarnation_(std::to_string(cluster::detail::random_message_id_start())),
          hb_key_(options_.key_prefix + "hb:" + options_.node_id),
          stream_key_(options_.key_prefix + "n:" + options_.node_id),
          all_channel_(options_.key_prefix + "all"),
          group_prefix_(options_.key_prefix + "g:"),
          route_sha_(script_sha1(bus_route_script)),
          claim_sha_(script_sha1(bus_claim_script)),
          release_sha_(script_sha1(bus_release_script)) {
        commands_ = std::make_shared<bus_link>(strand_, options_, "gatehouse-bus:" + options_.node_id + ":commands");
        subscriber_ = std::make_shared<bus_link>(strand_, options_, "gatehouse-bus:" + options_.node_id + ":pubsub");
        reader_ = std::make_shared<bus_link>(strand_, options_, "gatehouse-bus:" + options_.node_id + ":stream");
    }

    ~redis_bus_core() {
        // Reached without close() only when the io_context died first: the
        // links must not call back into a core that is gone.
        for (auto* link : {&commands_, &subscriber_, &reader_})
            if (*link) (*link)->set_hooks({});
    }

    redis_bus_core(const redis_bus_core&) = delete;
    redis_bus_core& operator=(const redis_bus_core&) = delete;

    const strand_type& strand() const noexcept { return strand_; }
    const redis_event_bus_options& options() const noexcept { return options_; }
    cluster::detail::atomic_stats& stats() noexcept { return stats_; }
    const std::string& node_id() const noexcept { return options_.node_id; }
    bool closed() const noexcept { return closed_; }

    void start() {
        commands_->set_hooks({[this] { on_commands_up(); }, [this](bool stuck) { on_commands_down(stuck); }, nullptr});
        subscriber_->set_hooks({[this] { on_subscriber_up(); }, [this](bool) { on_subscriber_down(); },
                                [this](redisReply* r) { on_push(r); }});
        reader_->set_hooks({[this] { on_reader_up(); }, [this](bool stuck) { on_reader_down(stuck); }, nullptr});
        commands_->start();
        subscriber_->start();
        reader_->start();
        arm_heartbeat();
    }

    // --- operations (on the strand) ------------------------------------------

    void subscribe(event_bus::message_handler handler, event_bus::done_completion done) {
        if (closed_) return finish(done, cluster_errc::bus_closed);
        handler_ = std::move(handler);
        if (ready()) return finish(done, {});
        if (done) waiting_ready_.push_back(std::move(done));
        // A refused or lost connection fails the wait at once (the links'
        // down hooks); this bounds the wait on a Redis that accepts
        // connections but does not answer. Three connections and the
        // registration take a few round trips: three command timeouts.
        ready_timer_.expires_after(3 * options_.command_timeout);
        ready_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            if (!ec) self->fail_waiting_ready(cluster_errc::bus_unavailable);
        });
    }

    /// `envelope` is encoded; `target` views into it.
    void publish(message_kind kind, std::string envelope, std::size_t target_offset, std::size_t target_size,
                 event_bus::publish_completion done) {
        // Reply handlers wait inside the links, which the core owns: they
        // hold the core weakly (no cycle that outlives a dead io_context).
        auto complete = [stats = stats_ptr_, done = std::move(done)](std::error_code ec, std::size_t nodes) {
            cluster::detail::atomic_stats::bump(ec ? stats->publish_failed : stats->published);
            if (done) done(ec, nodes);
        };
        if (closed_) return complete(cluster_errc::bus_closed, 0);
        const std::string_view target(envelope.data() + target_offset, target_size);
        if (kind == message_kind::to_group || kind == message_kind::to_all) {
            std::string channel = kind == message_kind::to_all ? all_channel_ : group_prefix_ + std::string(target);
            // Redis counts subscriber connections, this node's own included.
            const bool self_listens = kind == message_kind::to_all
                                          ? all_confirmed_
                                          : confirmed_channels_.count(channel) != 0 &&
                                                inbound_.interests().contains(interest_kind::group, target);
            const std::string_view args[] = {"PUBLISH", channel, envelope};
            return commands_->send(
                args, 3,
                [complete = std::move(complete), self_listens](std::error_code ec, redisReply* reply) {
                    if (ec) return complete(ec, 0);
                    if ((ec = bus_error_of(reply))) return complete(ec, 0);
                    if (reply->type != REDIS_REPLY_INTEGER) return complete(cluster_errc::bad_reply, 0);
                    const auto n = reply->integer - (self_listens ? 1 : 0);
                    complete({}, n > 0 ? static_cast<std::size_t>(n) : 0);
                },
                options_.command_timeout);
        }
        const char* mode = kind == message_kind::to_node ? "n"
                           : (kind == message_kind::to_session || kind == message_kind::revoke_session) ? "s"
                                                                                                        : "a";
        const auto maxlen = std::to_string(options_.stream_max_length);
        const auto keep = ms_arg(options_.stream_retention);
        const std::string_view args[] = {"EVALSHA", route_sha_, "0",      options_.key_prefix, mode, target,
                                         node_id(), envelope,        maxlen, keep};
        commands_->send(
            args, 10,
            [weak = weak_from_this(), complete = std::move(complete)](std::error_code ec, redisReply* reply) {
                if (ec) return complete(ec, 0);
                if ((ec = script_error(weak, reply))) return complete(ec, 0);
                if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0)
                    return complete(cluster_errc::bad_reply, 0);
                complete({}, static_cast<std::size_t>(reply->integer));
            },
            options_.command_timeout);
    }

    void declare(interest_kind kind, std::string name, event_bus::done_completion done) {
        if (closed_) return finish(done, cluster_errc::bus_closed);
        inbound_.interests().add(kind, name);
        switch (kind) {
        case interest_kind::group: {
            auto channel = group_prefix_ + name;
            if (!subscriber_->up()) return finish(done, cluster_errc::bus_unavailable);
            // hiredis 0.14 forgets a channel's callback when an UNSUBSCRIBE
            // answer arrives after a new SUBSCRIBE was sent (1.x counts
            // pending subscriptions and does not): subscribe again only once
            // the pending unsubscription is confirmed (on_push).
            // (Checked first: the channel is still confirmed until then.)
            if (unsubscribing_.count(channel) != 0) {
                deferred_subscribing_[channel].push_back({std::move(done), std::chrono::steady_clock::now()});
                return;
            }
            if (confirmed_channels_.count(channel) != 0) return finish(done, {});
            auto& waiters = subscribing_[channel];
            if (waiters.empty() && !subscriber_->send_pubsub({"SUBSCRIBE", channel})) {
                subscribing_.erase(channel);
                return finish(done, cluster_errc::bus_unavailable);
            }
            waiters.push_back({std::move(done), std::chrono::steady_clock::now()});
            return;
        }
        case interest_kind::session: return claim(name, "claim", std::move(done));
        case interest_kind::account:
            return commands_->command({"SADD", options_.key_prefix + "a:" + name, node_id()},
                                      integer_reply(std::move(done)));
        }
    }

    void withdraw(interest_kind kind, std::string name, event_bus::done_completion done) {
        if (closed_) return finish(done, cluster_errc::bus_closed);
        inbound_.interests().remove(kind, name);
        switch (kind) {
        case interest_kind::group: {
            auto channel = group_prefix_ + name;
            const bool subscribed = confirmed_channels_.count(channel) != 0 || subscribing_.count(channel) != 0;
            // A subscription dies with its connection: nothing to undo then.
            if (!subscribed || !subscriber_->up()) return finish(done, {});
            auto& waiters = unsubscribing_[channel];
            if (waiters.empty() && !subscriber_->send_pubsub({"UNSUBSCRIBE", channel})) {
                unsubscribing_.erase(channel);
                return finish(done, {});
            }
            waiters.push_back({std::move(done), std::chrono::steady_clock::now()});
            return;
        }
        case interest_kind::session: {
            const auto key = options_.key_prefix + "s:" + name;
            const std::string_view args[] = {"EVALSHA", release_sha_, "1", key, node_id()};
            return commands_->send(args, 5, integer_reply(std::move(done)), options_.command_timeout);
        }
        case interest_kind::account:
            return commands_->command({"SREM", options_.key_prefix + "a:" + name, node_id()},
                                      integer_reply(std::move(done)));
        }
    }

    void node_alive(std::string node, event_bus::alive_completion done) {
        auto complete = [done = std::move(done)](std::error_code ec, bool alive) {
            if (done) done(ec, alive);
        };
        if (closed_) return complete(cluster_errc::bus_closed, false);
        commands_->command({"EXISTS", options_.key_prefix + "hb:" + node},
                           [complete = std::move(complete)](std::error_code ec, redisReply* reply) {
                               if (ec) return complete(ec, false);
                               if ((ec = bus_error_of(reply))) return complete(ec, false);
                               if (reply->type != REDIS_REPLY_INTEGER) return complete(cluster_errc::bad_reply, false);
                               complete({}, reply->integer == 1);
                           });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        handler_ = nullptr;
        heartbeat_timer_.cancel();
        ready_timer_.cancel();
        fail_waiting_ready(cluster_errc::bus_closed);
        for (auto* table : {&subscribing_, &unsubscribing_, &deferred_subscribing_}) {
            for (auto& entry : *table)
                for (auto& w : entry.second) finish(w.done, cluster_errc::bus_closed);
            table->clear();
        }
        subscriber_->close();
        reader_->close();
        // Leave the directory at once rather than after heartbeat_ttl.
        if (commands_->up()) {
            auto ignore = [](std::error_code, redisReply*) {};
            for (const auto& session : inbound_.interests().of(interest_kind::session)) {
                const auto key = options_.key_prefix + "s:" + session;
                const std::string_view args[] = {"EVALSHA", release_sha_, "1", key, node_id()};
                commands_->send(args, 5, ignore, options_.command_timeout);
            }
            for (const auto& account : inbound_.interests().of(interest_kind::account))
                commands_->command({"SREM", options_.key_prefix + "a:" + account, node_id()}, ignore);
            commands_->command({"DEL", hb_key_}, ignore);
            commands_->close_after_pending();
        } else {
            commands_->close();
        }
        inbound_.interests().clear();
    }

private:
    struct waiter {
        event_bus::done_completion done;
        std::chrono::steady_clock::time_point since;
    };

    static void finish(event_bus::done_completion& done, std::error_code ec) {
        if (done) done(ec);
    }

    bus_link::reply_handler integer_reply(event_bus::done_completion done) {
        return [weak = weak_from_this(), done = std::move(done)](std::error_code ec, redisReply* reply) mutable {
            if (!ec) ec = script_error(weak, reply);
            if (!ec && reply->type != REDIS_REPLY_INTEGER) ec = cluster_errc::bad_reply;
            finish(done, ec);
        };
    }

    bool ready() const noexcept {
        return registered_ && all_confirmed_ && !last_id_.empty() && reader_->up() && !closed_;
    }

    void check_ready() {
        if (!ready() || waiting_ready_.empty()) return;
        ready_timer_.cancel();
        auto waiting = std::move(waiting_ready_);
        waiting_ready_.clear();
        for (auto& done : waiting) finish(done, {});
    }

    void fail_waiting_ready(cluster_errc why) {
        auto waiting = std::move(waiting_ready_);
        waiting_ready_.clear();
        for (auto& done : waiting) finish(done, why);
    }

    // --- the command connection: heartbeat and registration -----------------

    void on_commands_up() {
        registered_ = false;
        if (commands_up_before_) cluster::detail::atomic_stats::bump(stats_.reconnects);
        commands_up_before_ = true;
        // Scripts run by EVALSHA (the body is not sent and hashed per
        // publish); loading them first means they are cached before any
        // EVALSHA on this connection.
        load_scripts();
        register_all();
    }

    /// Everything this node declared, registered again: Redis may have lost
    /// it (restart without persistence) or pruned it (the heartbeat expired
    /// while this node was away or Redis was slow).
    void register_all() {
        // The stream first: once the heartbeat exists, publishers may write
        // a new stream, and a vanished one would go unnoticed.
        commands_->command({"PEXPIRE", stream_key_, ms_arg(options_.stream_retention)}, on_stream_refreshed());
        commands_->command({"SET", hb_key_, incarnation_, "PX", ms_arg(options_.heartbeat_ttl)},
                           [](std::error_code, redisReply*) {});
        for (const auto& session : inbound_.interests().of(interest_kind::session)) claim(session, "reclaim", nullptr);
        for (const auto& account : inbound_.interests().of(interest_kind::account))
            commands_->command({"SADD", options_.key_prefix + "a:" + account, node_id()},
                               [](std::error_code, redisReply*) {});
        // Redis answers in order: once this is answered, so is everything above.
        commands_->command({"PING"}, [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
            auto self = weak.lock();
            if (!self || ec || bus_error_of(reply)) return;
            self->registered_ = true;
            self->check_ready();
        });
    }

    void load_scripts() {
        for (const char* script : {bus_route_script, bus_claim_script, bus_release_script})
            commands_->command({"SCRIPT", "LOAD", script}, [](std::error_code, redisReply*) {});
    }

    /// A script cache flushed under us (SCRIPT FLUSH) answers NOSCRIPT: the
    /// operation fails with backend_error and the scripts are loaded again.
    static std::error_code script_error(const std::weak_ptr<redis_bus_core>& weak, const redisReply* reply) {
        const auto ec = bus_error_of(reply);
        if (ec && bus_text_of(reply).rfind("NOSCRIPT", 0) == 0)
            if (auto self = weak.lock()) self->load_scripts();
        return ec;
    }

    void on_commands_down(bool stuck) {
        registered_ = false;
        fail_waiting_ready(cluster_errc::bus_unavailable);
        // A Redis that does not answer one connection answers none.
        if (stuck) {
            subscriber_->reset(true);
            reader_->reset(true);
        }
    }

    /// Refreshes the heartbeat only while it exists (XX): when it has
    /// expired meanwhile (a stalled Redis, a stalled host), other nodes may
    /// have pruned this node from the directory, so everything is registered
    /// again.
    void send_heartbeat() {
        commands_->command({"SET", hb_key_, incarnation_, "PX", ms_arg(options_.heartbeat_ttl), "XX"},
                           [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
                               auto self = weak.lock();
                               if (!self || ec || reply->type != REDIS_REPLY_NIL || self->closed_) return;
                               cluster::detail::atomic_stats::bump(self->stats_.heartbeat_lapses);
                               self->register_all();
                           });
        commands_->command({"PEXPIRE", stream_key_, ms_arg(options_.stream_retention)}, on_stream_refreshed());
    }

    void arm_heartbeat() {
        heartbeat_timer_.expires_after(std::min(options_.heartbeat_interval, options_.command_timeout));
        heartbeat_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            if (ec || self->closed_) return;
            self->tick();
            self->arm_heartbeat();
        });
    }

    /// Heartbeat, and the watchdog for pub/sub confirmations (which have no
    /// command timeout of their own).
    void tick() {
        const auto now = std::chrono::steady_clock::now();
        if (commands_->up() && now - last_heartbeat_ >= options_.heartbeat_interval) {
            last_heartbeat_ = now;
            send_heartbeat();
        }
        for (const auto* table : {&subscribing_, &unsubscribing_, &deferred_subscribing_}) {
            for (const auto& entry : *table) {
                if (!entry.second.empty() && now - entry.second.front().since > options_.command_timeout) {
                    subscriber_->reset(true);
                    return;
                }
            }
        }
    }

    void claim(const std::string& session, const char* mode, event_bus::done_completion done) {
        std::string taken;
        cluster::encode_envelope({message_kind::session_taken, next_message_id(), node_id(), session, node_id()},
                                 taken);
        const auto maxlen = std::to_string(options_.stream_max_length);
        const auto keep = ms_arg(options_.stream_retention);
        const std::string_view args[] = {"EVALSHA", claim_sha_, "0",    options_.key_prefix, session,
                                         node_id(), taken,          maxlen, keep,                mode};
        commands_->send(
            args, 10,
            [weak = weak_from_this(), session, done = std::move(done)](std::error_code ec, redisReply* reply) mutable {
                if (!ec) ec = script_error(weak, reply);
                if (!ec && reply->type == REDIS_REPLY_STRING) {
                    // Re-registration found another live holder: the session
                    // moved while this node was away.
                    if (auto self = weak.lock()) self->lost_session(session, bus_text_of(reply));
                } else if (!ec && reply->type != REDIS_REPLY_INTEGER) {
                    ec = cluster_errc::bad_reply;
                }
                finish(done, ec);
            },
            options_.command_timeout);
    }

    void lost_session(const std::string& session, std::string_view holder) {
        if (!inbound_.interests().remove(interest_kind::session, session) || !handler_) return;
        cluster::detail::atomic_stats::bump(stats_.delivered);
        handler_(cluster::bus_message{message_kind::session_taken, session, holder, holder, 0});
    }

    std::uint64_t next_message_id() noexcept { return message_ids_->fetch_add(1, std::memory_order_relaxed); }

public:
    /// Shared with the public object, which numbers the messages it encodes.
    std::shared_ptr<std::atomic<std::uint64_t>> message_ids_ =
        std::make_shared<std::atomic<std::uint64_t>>(cluster::detail::random_message_id_start());

private:
    // --- the subscriber connection: groups and everyone -----------------------

    void on_subscriber_up() {
        std::vector<std::string> args{"SUBSCRIBE", all_channel_};
        for (const auto& group : inbound_.interests().of(interest_kind::group)) args.push_back(group_prefix_ + group);
        if (!subscriber_->send_pubsub(args)) subscriber_->reset(false);
    }

    void on_subscriber_down() {
        all_confirmed_ = false;
        confirmed_channels_.clear();
        fail_waiting_ready(cluster_errc::bus_unavailable);
        // Declarations stay (subscribed again on reconnection); their callers
        // learn they are not in effect yet. A withdrawal is complete: the
        // subscription died with the connection.
        for (auto* table : {&subscribing_, &deferred_subscribing_})
            for (auto& entry : *table)
                for (auto& w : entry.second) finish(w.done, cluster_errc::bus_unavailable);
        deferred_subscribing_.clear();
        for (auto& entry : unsubscribing_)
            for (auto& w : entry.second) finish(w.done, {});
        subscribing_.clear();
        unsubscribing_.clear();
    }

    void on_push(redisReply* reply) {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_STRING) {
            cluster::detail::atomic_stats::bump(stats_.bad_replies);
            return;
        }
        const auto type = bus_text_of(reply->element[0]);
        const auto channel = bus_text_of(reply->element[1]);
        if (type == "message") {
            if (reply->element[2]->type != REDIS_REPLY_STRING) {
                cluster::detail::atomic_stats::bump(stats_.bad_replies);
                return;
            }
            const auto bytes = bus_text_of(reply->element[2]);
            if (channel == all_channel_) {
                inbound_.receive(bytes, handler_, cluster::detail::arrival::broadcast);
            } else if (channel.size() > group_prefix_.size() && channel.compare(0, group_prefix_.size(), group_prefix_) == 0) {
                inbound_.receive(bytes, handler_, cluster::detail::arrival::group, channel.substr(group_prefix_.size()));
            } else {
                cluster::detail::atomic_stats::bump(stats_.bad_replies);
            }
            return;
        }
        std::string name(channel);
        if (type == "subscribe") {
            confirmed_channels_.insert(name);
            if (name == all_channel_) {
                all_confirmed_ = true;
                check_ready();
            }
            complete_waiters(subscribing_, name, {});
        } else if (type == "unsubscribe") {
            confirmed_channels_.erase(name);
            complete_waiters(unsubscribing_, name, {});
            auto deferred = deferred_subscribing_.find(name);
            if (deferred == deferred_subscribing_.end()) return;
            auto waiters = std::move(deferred->second);
            deferred_subscribing_.erase(deferred);
            const auto group = std::string_view(name).substr(group_prefix_.size());
            // Declared again while the unsubscription was under way (and not
            // withdrawn once more since).
            if (!inbound_.interests().contains(interest_kind::group, group)) {
                for (auto& w : waiters) finish(w.done, {});
                return;
            }
            auto& pending = subscribing_[name];
            const bool send = pending.empty();
            for (auto& w : waiters) pending.push_back(std::move(w));
            if (send && !subscriber_->send_pubsub({"SUBSCRIBE", name})) subscriber_->reset(false);
        }
    }

    void complete_waiters(std::map<std::string, std::vector<waiter>, std::less<>>& table, const std::string& channel,
                          std::error_code ec) {
        auto it = table.find(channel);
        if (it == table.end()) return;
        auto waiters = std::move(it->second);
        table.erase(it);
        for (auto& w : waiters) finish(w.done, ec);
    }

    // --- the stream reader ------------------------------------------------------

    void on_reader_up() {
        if (reader_up_before_) cluster::detail::atomic_stats::bump(stats_.reconnects);
        reader_up_before_ = true;
        // After a reconnection: entries past last_id_ may have been trimmed,
        // or the stream may have expired, while the reader was away.
        check_next_ = true;
        if (!last_id_.empty()) return read_next();
        // First start: read what arrives from now on, counting from the
        // stream's present total.
        const std::string_view args[] = {"EVAL", bus_checked_read_script, "1", stream_key_, "0-0", "0"};
        reader_->send(
            args, 6,
            [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
                auto self = weak.lock();
                if (!self || ec) return;
                self->on_start_position(reply);
            },
            options_.command_timeout);
    }

    void on_start_position(const redisReply* reply) {
        // EVAL refused (an ACL, say): start from the last entry, unchecked.
        if (bus_error_of(reply)) {
            cluster::detail::atomic_stats::bump(stats_.bad_replies);
            return start_from_last_entry();
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
            reply->element[0]->type != REDIS_REPLY_INTEGER ||
            (reply->element[0]->integer == 1 &&
             (reply->elements != 6 || reply->element[1]->type != REDIS_REPLY_INTEGER ||
              reply->element[4]->type != REDIS_REPLY_STRING))) {
            cluster::detail::atomic_stats::bump(stats_.bad_replies);
            return reader_->reset(false);
        }
        if (reply->element[0]->integer == 1) {
            last_id_ = std::string(bus_text_of(reply->element[4]));
            stream_read_ = reply->element[1]->integer > 0 ? static_cast<std::uint64_t>(reply->element[1]->integer) : 0;
        } else {
            last_id_ = "0-0";
            stream_read_ = 0;
        }
        check_next_ = false;
        check_ready();
        read_next();
    }

    void start_from_last_entry() {
        reader_->command({"XREVRANGE", stream_key_, "+", "-", "COUNT", "1"},
                         [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
                             auto self = weak.lock();
                             if (!self || ec) return;
                             if (bus_error_of(reply) || reply->type != REDIS_REPLY_ARRAY) {
                                 cluster::detail::atomic_stats::bump(self->stats_.bad_replies);
                                 return self->reader_->reset(false);
                             }
                             std::string last = "0-0";
                             if (reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
                                 reply->element[0]->elements == 2 &&
                                 reply->element[0]->element[0]->type == REDIS_REPLY_STRING)
                                 last = std::string(bus_text_of(reply->element[0]->element[0]));
                             self->last_id_ = std::move(last);
                             self->check_next_ = false;
                             self->check_ready();
                             self->read_next();
                         });
    }

    void on_reader_down(bool stuck) {
        fail_waiting_ready(cluster_errc::bus_unavailable);
        if (stuck) {
            commands_->reset(true);
            subscriber_->reset(true);
        }
    }

    void read_next() {
        if (closed_) return;
        if (check_next_) return read_checked();
        const auto block = std::to_string(options_.read_block.count());
        const auto count = std::to_string(options_.read_batch);
        const std::string_view args[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", stream_key_, last_id_};
        reader_->send(
            args, 8,
            [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
                auto self = weak.lock();
                if (!self || ec) return;  // the link reconnects; on_reader_up reads on
                self->on_entries(reply);
            },
            options_.read_block + options_.command_timeout);
    }

    /// Entries a read may return when the reader was behind far enough to
    /// have been trimmed past: after MAXLEN ~ n, a stream holds n entries or
    /// more, all of them after the reader's position if it was passed.
    std::size_t behind_threshold() const noexcept { return std::min(options_.read_batch, options_.stream_max_length); }

    void on_entries(redisReply* reply) {
        // nil: the BLOCK time passed without entries.
        if (reply->type == REDIS_REPLY_ARRAY) {
            std::size_t taken = 0;
            for (std::size_t s = 0; s < reply->elements; ++s) {
                const auto* stream = reply->element[s];
                if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
                    stream->element[1]->type != REDIS_REPLY_ARRAY) {
                    cluster::detail::atomic_stats::bump(stats_.bad_replies);
                    continue;
                }
                const auto* entries = stream->element[1];
                for (std::size_t i = 0; i < entries->elements; ++i) on_entry(entries->element[i]);
                taken += entries->elements;
            }
            // A blocked XREAD is woken by one write (one entry): a batch this
            // large means the reader was behind, and may have been trimmed
            // past. The next read is a checked one.
            if (taken >= behind_threshold()) check_next_ = true;
        } else if (reply->type != REDIS_REPLY_NIL) {
            cluster::detail::atomic_stats::bump(stats_.bad_replies);
            if (bus_error_of(reply)) return reader_->reset(false);
        }
        read_next();
    }

    void read_checked() {
        // Cleared now, not on the reply: a reason to check found while this
        // one is under way calls for another.
        check_next_ = false;
        const auto count = std::to_string(options_.read_batch);
        const std::string_view args[] = {"EVAL", bus_checked_read_script, "1", stream_key_, last_id_, count};
        reader_->send(
            args, 6,
            [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
                auto self = weak.lock();
                if (!self || ec) return;  // the link reconnects and checks again
                self->on_checked(reply);
            },
            options_.command_timeout);
    }

    /// The reader's accounting: stream_read_ is how many entries of the
    /// stream's present incarnation lie at or before last_id_ (read, or
    /// already counted lost). Redis counts every entry ever added
    /// (entries-added); once the reader has read to the end, the difference
    /// is what was trimmed before it could read it.
    void on_checked(const redisReply* reply) {
        const bool shape_ok =
            !bus_error_of(reply) && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER &&
            (reply->element[0]->integer == 0 ||
             (reply->elements == 6 && reply->element[1]->type == REDIS_REPLY_INTEGER &&
              reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[3]->type == REDIS_REPLY_STRING &&
              reply->element[5]->type == REDIS_REPLY_ARRAY));
        if (!shape_ok) {
            // (EVAL refused by an ACL, say.) Reading goes on, unchecked:
            // losses are not counted, but nothing else stops.
            cluster::detail::atomic_stats::bump(stats_.bad_replies);
            return read_next();
        }
        if (reply->element[0]->integer == 0) {
            // Gone after the reader had read from it: expired (the node was
            // away for longer than stream_retention), deleted, or lost with a
            // Redis restart. Whether it still held unread entries is unknown.
            if (stream_read_ > 0) {
                cluster::detail::atomic_stats::bump(stats_.stream_gaps);
                // A stream made anew numbers its entries afresh: read it
                // from its first entry.
                last_id_ = "0-0";
                stream_read_ = 0;
                resync_ = false;
            }
            return read_next();
        }
        const long long added = reply->element[1]->integer;
        const auto length = static_cast<std::uint64_t>(std::max<long long>(0, reply->element[2]->integer));
        const auto* entries = reply->element[5];
        if (added >= 0 && !resync_) {
            // Every entry at or before last_id_ that is not in the stream any
            // more was trimmed: at least stream_read_ of them when last_id_
            // itself is gone. Fewer means another stream under the same key
            // (it vanished and was written again since this node last looked).
            const auto total = static_cast<std::uint64_t>(added);
            stream_id first{}, last_read{};
            const bool passed = length == 0 || (parse_stream_id(bus_text_of(reply->element[3]), first) &&
                                                parse_stream_id(last_id_, last_read) && last_read < first);
            if (total < stream_read_ || (passed && total < length + stream_read_)) {
                cluster::detail::atomic_stats::bump(stats_.stream_gaps);
                resync_ = true;  // its entries trimmed before now are not counted
            }
        }
        // Counted before the entries are delivered: a handler that sees a
        // message after a gap finds the gap counted already.
        const bool caught_up = entries->elements < options_.read_batch;
        if (caught_up && added >= 0 && !resync_) {
            // With these, everything the stream ever held is at or before
            // last_id_.
            const auto total = static_cast<std::uint64_t>(added);
            const auto accounted = stream_read_ + entries->elements;
            if (total > accounted) {
                cluster::detail::atomic_stats::bump(stats_.stream_gaps);
                cluster::detail::atomic_stats::bump(stats_.stream_messages_lost, total - accounted);
            }
        }
        for (std::size_t i = 0; i < entries->elements; ++i) on_entry(entries->element[i]);
        if (!caught_up) {
            check_next_ = true;  // still behind: read on, checked
        } else if (added >= 0) {
            stream_read_ = static_cast<std::uint64_t>(added);
            resync_ = false;
        }
        read_next();
    }

    void on_entry(const redisReply* entry) {
        ++stream_read_;
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING ||
            entry->element[1]->type != REDIS_REPLY_ARRAY) {
            cluster::detail::atomic_stats::bump(stats_.bad_replies);
            return;
        }
        last_id_.assign(entry->element[0]->str, entry->element[0]->len);
        const auto* fields = entry->element[1];
        for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
            const auto* name = fields->element[f];
            const auto* value = fields->element[f + 1];
            if (name->type == REDIS_REPLY_STRING && bus_text_of(name) == "e" && value->type == REDIS_REPLY_STRING) {
                inbound_.receive(bus_text_of(value), handler_, cluster::detail::arrival::targeted);
                return;
            }
        }
        // An entry without an envelope: not written by a gatehouse bus.
        cluster::detail::atomic_stats::bump(stats_.malformed);
    }

    /// The reply to the PEXPIRE that keeps the stream alive: 0 means it is
    /// gone. While the reader waits in XREAD on a key that vanished it would
    /// wait unaware: its next read is a checked one.
    bus_link::reply_handler on_stream_refreshed() {
        return [weak = weak_from_this()](std::error_code ec, redisReply* reply) {
            auto self = weak.lock();
            if (!self || ec || reply->type != REDIS_REPLY_INTEGER || reply->integer != 0) return;
            if (self->stream_read_ > 0) self->check_next_ = true;
        };
    }

    strand_type strand_;
    redis_event_bus_options options_;
    std::shared_ptr<cluster::detail::atomic_stats> stats_ptr_ = std::make_shared<cluster::detail::atomic_stats>();
    cluster::detail::atomic_stats& stats_ = *stats_ptr_;
    cluster::detail::inbound inbound_;
    event_bus::message_handler handler_;
    std::shared_ptr<bus_link> commands_, subscriber_, reader_;
    asio::steady_timer heartbeat_timer_;
    asio::steady_timer ready_timer_;
    std::string incarnation_;
    std::string hb_key_, stream_key_, all_channel_, group_prefix_;
    std::string route_sha_, claim_sha_, release_sha_;
    std::string last_id_;
    /// Entries of the stream at or before last_id_ (see on_checked).
    std::uint64_t stream_read_ = 0;
    /// The next read is a checked one (EVAL bus_checked_read_script).
    bool check_next_ = false;
    /// The stream was found replaced: stream_read_ is unknown until the
    /// reader next reaches its end.
    bool resync_ = false;
    std::set<std::string, std::less<>> confirmed_channels_;
    std::map<std::string, std::vector<waiter>, std::less<>> subscribing_, unsubscribing_, deferred_subscribing_;
    std::vector<event_bus::done_completion> waiting_ready_;
    std::chrono::steady_clock::time_point last_heartbeat_{};
    bool registered_ = false;
    bool all_confirmed_ = false;
    bool commands_up_before_ = false;
    bool reader_up_before_ = false;
    bool closed_ = false;
};

}  // namespace detail

class redis_event_bus final : public cluster::event_bus {
public:
    /// Joins the cluster at once (connecting asynchronously). Throws
    /// std::invalid_argument for invalid options (start-up configuration).
    redis_event_bus(const asio::any_io_executor& executor, redis_event_bus_options options)
        : core_(std::make_shared<detail::redis_bus_core>(executor, validated(std::move(options)))),
          message_ids_(core_->message_ids_) {
        asio::dispatch(core_->strand(), [core = core_] { core->start(); });
    }

    ~redis_event_bus() override { close(); }

    redis_event_bus(const redis_event_bus&) = delete;
    redis_event_bus& operator=(const redis_event_bus&) = delete;

    std::string_view node_id() const noexcept override { return core_->node_id(); }

    void subscribe(message_handler handler, done_completion done) override {
        run([handler = std::move(handler), done = std::move(done)](detail::redis_bus_core& c) mutable {
            c.subscribe(std::move(handler), std::move(done));
        });
    }

    void publish(cluster::message_kind kind, std::string_view target, std::string_view payload,
                 publish_completion done) override {
        using cluster::cluster_errc;
        std::error_code invalid;
        if (kind == cluster::message_kind::session_taken)
            invalid = cluster_errc::kind_not_publishable;
        else if (static_cast<std::uint8_t>(kind) < cluster::min_message_kind ||
                 static_cast<std::uint8_t>(kind) > cluster::max_message_kind || !cluster::valid_target(kind, target) ||
                 (kind == cluster::message_kind::to_node && !cluster::valid_node_id(target)))
            invalid = cluster_errc::invalid_target;
        else if (payload.size() > core_->options().max_payload_size)
            invalid = cluster_errc::payload_too_large;
        if (invalid) {
            return run([invalid, done = std::move(done)](detail::redis_bus_core& c) mutable {
                cluster::detail::atomic_stats::bump(c.stats().publish_failed);
                if (done) done(invalid, 0);
            });
        }
        // Encoded here, once: the strand receives one buffer.
        std::string envelope;
        const auto& self = core_->node_id();
        envelope.reserve(cluster::envelope_size(self, target, payload));
        cluster::encode_envelope({kind, message_ids_->fetch_add(1, std::memory_order_relaxed), self, target, payload},
                                 envelope, core_->options().max_payload_size);
        const auto offset = cluster::envelope_header_size + self.size();
        run([kind, envelope = std::move(envelope), offset, size = target.size(),
             done = std::move(done)](detail::redis_bus_core& c) mutable {
            c.publish(kind, std::move(envelope), offset, size, std::move(done));
        });
    }

    void declare_interest(cluster::interest_kind kind, std::string_view name, done_completion done) override {
        if (!valid_interest(kind, name)) return reject(std::move(done));
        run([kind, name = std::string(name), done = std::move(done)](detail::redis_bus_core& c) mutable {
            c.declare(kind, std::move(name), std::move(done));
        });
    }

    void withdraw_interest(cluster::interest_kind kind, std::string_view name, done_completion done) override {
        if (!valid_interest(kind, name)) return reject(std::move(done));
        run([kind, name = std::string(name), done = std::move(done)](detail::redis_bus_core& c) mutable {
            c.withdraw(kind, std::move(name), std::move(done));
        });
    }

    void node_alive(std::string_view node, alive_completion done) override {
        if (!cluster::valid_node_id(node)) {
            return run([done = std::move(done)](detail::redis_bus_core& c) mutable {
                if (done) done(c.closed() ? cluster::cluster_errc::bus_closed : cluster::cluster_errc::invalid_node_id,
                               false);
            });
        }
        run([node = std::string(node), done = std::move(done)](detail::redis_bus_core& c) mutable {
            c.node_alive(std::move(node), std::move(done));
        });
    }

    cluster::event_bus_stats stats() const override { return core_->stats().snapshot(); }

    void close() override {
        asio::dispatch(core_->strand(), [core = core_] { core->close(); });
    }

private:
    template <class Operation>
    void run(Operation&& op) {
        // post, not dispatch: completions never run inline within the call.
        asio::post(core_->strand(), [core = core_, op = std::forward<Operation>(op)]() mutable { op(*core); });
    }

    void reject(done_completion done) {
        run([done = std::move(done)](detail::redis_bus_core& c) mutable {
            if (done) done(c.closed() ? cluster::cluster_errc::bus_closed : cluster::cluster_errc::invalid_target);
        });
    }

    static bool valid_interest(cluster::interest_kind kind, std::string_view name) {
        const auto k = static_cast<std::uint8_t>(kind);
        return k >= 1 && k <= 3 && !name.empty() && name.size() <= cluster::max_target_size;
    }

    static redis_event_bus_options validated(redis_event_bus_options o) {
        auto fail = [](const char* what) { throw std::invalid_argument(std::string("redis_event_bus: ") + what); };
        if (!cluster::valid_node_id(o.node_id)) fail("node id must be 1..64 characters of [A-Za-z0-9._:-]");
        if (const char* problem = detail::connection_options_problem(o)) fail(problem);
        if (o.key_prefix.empty()) fail("key_prefix is empty");
        if (o.heartbeat_interval.count() <= 0 || o.heartbeat_ttl <= o.heartbeat_interval)
            fail("heartbeat_interval must be positive and below heartbeat_ttl");
        if (o.read_block.count() <= 0 || o.read_batch == 0) fail("read_block and read_batch must be positive");
        if (o.stream_max_length == 0 || o.stream_retention.count() <= 0)
            fail("stream_max_length and stream_retention must be positive");
        if (o.duplicate_window == 0) fail("duplicate_window is 0");
        if (o.max_payload_size == 0 || o.max_payload_size > cluster::max_payload_size)
            fail("max_payload_size must be 1..1 MiB");
        return o;
    }

    std::shared_ptr<detail::redis_bus_core> core_;
    std::shared_ptr<std::atomic<std::uint64_t>> message_ids_;
};

}  // namespace gatehouse::adapters::redis
