// redis_session_store: a session_store in Redis (asynchronous on the host's
// Asio executor; replies parsed by hiredis's reader, 0.14 or 1.x). Sessions
// survive gateway restarts and are shared by every node that points at the
// same Redis.
//
// Threading: operations may be called from any thread. All Redis work runs
// on a strand of the executor given to the constructor; every completion is
// called on that strand (so on a thread running the host's io_context), never
// inline in the caller. Operations are posted to the strand even from a
// completion (which runs on it), so they take effect in the order they were
// called (event_queue_store's ordering promise relies on it). Nothing
// ever blocks: commands are pipelined on one connection (commands issued in
// the same turn of the event loop leave in one write), written and read with
// Asio; replies are parsed by hiredis's reader.
//
// Cost: load and touch are one command each, formatted straight into the
// output buffer; all they allocate is hiredis's parsed reply and the record
// returned. benchmarks/run_session.sh measures what they cost Redis and the
// client, beside redis-benchmark.
//
// Failure: the store connects by itself and reconnects after a loss (backoff
// between reconnect_delay_min and reconnect_delay_max). While disconnected,
// operations fail at once with session_errc::backend_unavailable; a command
// without an answer after command_timeout fails with session_errc::timeout
// and the connection is dropped and re-established (Redis answers in order,
// so a stuck command means a stuck connection). No operation ever hangs.
//
// Requires Redis 7.0 or later (SET ... XX GET, PEXPIRE ... LT, Lua scripts
// run with EVALSHA).
//
// Lifetime: destroy (or close()) the store before its io_context; pending
// operations then complete with session_errc::store_closed as long as the
// io_context still runs.
//
// Key schema (P = key_prefix, default "gatehouse:"; {id} = the session id
// without its dashes, 32 hex digits, which keeps P s:{id} and P a:{id} within
// the 44 bytes Redis stores most cheaply when P has at most 10 bytes):
//   P s:{id}        string  record (see detail/record_codec.hpp), including
//                           the outstanding reconnection token's expiry and
//                           hash, or "R" once revoked; TTL max_lifetime +
//                           tombstone_retention, tombstone_retention once
//                           revoked or found expired
//   P a:{id}        string  last activity (ms since the epoch); TTL
//                           idle_timeout, slid by touch: the session is live
//                           while this key exists or a token holds it
//   P t:{hash}      string  "L{id}" (usable) or "C{id}" (consumed), hash =
//                           SHA-256 hex of the token (tokens are never stored);
//                           TTL the window
//   P acct:{account} set    the {id}s of the account's sessions; TTL max_lifetime +
//                           tombstone_retention from its newest session
//   P q:{id}        list    the events queued for a parked session (event_queue_store),
//                           oldest first, each "<ms>|<event bytes>": <ms> the time
//                           it was queued (decimal ms since the epoch by Redis's
//                           clock), then the event's bytes untouched; TTL that of
//                           P qm:{id}
//   P qm:{id}       hash    {h: the node holding the session, "" while parked;
//                           b: event bytes in P q:{id}}; TTL the retention of
//                           the last park or take
// Multi-key changes run as Lua scripts (atomic); load is one MGET of two keys
// and touch one SET ... XX GET.
//
// Event queues (the event_queue_store interface, for parked sessions): park,
// append and take are one Lua script each, so the holder fencing is exact:
// an append runs entirely before a take (and is returned by it) or after it
// (and is refused with the holder). park and append evict from the front
// (LPOP) what max_events / max_bytes / max_age require, then RPUSH; take
// returns the whole list (LRANGE), deletes it and records its node as the
// holder; discard is one DEL of both keys. park and take set the retention
// on both keys; append leaves it (the list gets the hash's remaining PTTL).
// The framing is binary-safe without escaping: the time is digits only, so
// the first '|' of an entry ends it and every byte after it is the event's.
// Times come from Redis (TIME): the nodes' clocks may disagree, Redis's is
// the one all of them share; take ages the entries against the time its
// script returns, on the client. An entry that does not parse is counted in
// `dropped`. park sends only the newest events that can stay within the
// limits (the others are counted as evicted without being sent), so its
// command is bounded by max_bytes. A value of another Redis type under these
// keys makes park, append and take fail with session_errc::bad_reply
// (WRONGTYPE); a P q:{id} left without its P qm:{id} (when the hash expired
// first) is not taken and is replaced by the next park.
//
// Why the activity has a key of its own (measured with redis-benchmark over
// 10,000 sessions, benchmarks/run_session.sh): touch must slide the idle
// expiry without reviving a session that already expired, and load must
// return the last activity. A blind in-place write into the record (LSET
// into a list, SETRANGE into the string) cannot refuse an expired session;
// a touch that only slides a TTL (PEXPIRE, the cheapest write) leaves load
// without the last activity unless it also reads the TTL, a second command;
// reading record and activity from one list or hash (LRANGE, HGETALL) costs
// Redis as much as the MGET of two strings. One key each way would bound
// load at the rate of a GET of a record-sized value over the keyspace (about
// 0.8 of redis-benchmark's hot-key GET) and touch at that of PEXPIRE (about
// 0.75 of its hot-key SET).
//
// Migration: before schema 2 (this one), {id} kept its dashes. Keys written
// by an earlier version are not read: their sessions are not found (their
// users authenticate again) and the keys expire by their TTLs.
//
// Differences from memory_session_store: touch only slides the idle expiry
// and does not look at max_lifetime (load, update, revoke, list and token
// operations do, and report expired); a session that expired while idle keeps
// its record in Redis until it is next looked at or its max_lifetime passes.
#pragma once

#include <gatehouse/adapters/redis/detail/connection_options.hpp>
#include <gatehouse/detail/config.hpp>
#include <gatehouse/session/event_queue_store.hpp>
#include <gatehouse/session/session_store.hpp>

#include <asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::adapters::redis {

/// Connection options (host, port, password, database, command_timeout,
/// reconnect delays): see detail/connection_options.hpp. host may be a host
/// name, resolved (asynchronously) on every (re)connect.
struct redis_session_store_options : session::session_store_options, detail::connection_options {
    /// Prepended to every key; lets several deployments share one Redis.
    /// At most 10 bytes keeps the session keys in Redis's cheapest string
    /// form (see the key schema above).
    std::string key_prefix = "gatehouse:";
};

namespace detail {
class redis_session_core;
}  // namespace detail

class redis_session_store final : public session::session_store, public session::event_queue_store {
public:
    // Both interfaces name the same completion types.
    template <class T>
    using completion = session::session_store::completion<T>;
    using done_completion = session::session_store::done_completion;

    /// Starts connecting at once (asynchronously). Throws std::invalid_argument
    /// for invalid options (start-up configuration).
    GATEHOUSE_DECL redis_session_store(const asio::any_io_executor& executor, redis_session_store_options options);
    GATEHOUSE_DECL ~redis_session_store() override;

    redis_session_store(const redis_session_store&) = delete;
    redis_session_store& operator=(const redis_session_store&) = delete;

    /// Stops: pending and later operations complete with store_closed.
    GATEHOUSE_DECL void close();

    /// Whether the connection to Redis is up right now (for health checks).
    GATEHOUSE_DECL bool connected() const noexcept;

    GATEHOUSE_DECL void create(session::session_record record, completion<session::session_record> done) override;
    GATEHOUSE_DECL void load(std::string_view session_id, completion<session::session_record> done) override;
    GATEHOUSE_DECL void touch(std::string_view session_id, done_completion done) override;
    GATEHOUSE_DECL void update(session::session_record record, completion<session::session_record> done) override;
    GATEHOUSE_DECL void revoke(std::string_view session_id, done_completion done) override;
    GATEHOUSE_DECL void revoke_account(std::string_view account_id, completion<std::size_t> done) override;
    GATEHOUSE_DECL void list_account(std::string_view account_id,
                                     completion<std::vector<session::session_record>> done) override;
    GATEHOUSE_DECL void issue_reconnect_token(std::string_view session_id, std::chrono::milliseconds window,
                                              completion<session::reconnect_token> done) override;
    GATEHOUSE_DECL void consume_reconnect_token(std::string_view token,
                                                completion<session::session_record> done) override;

    session::session_timing timing() const noexcept override { return timing_; }

    // event_queue_store
    GATEHOUSE_DECL void park(std::string_view session_id, std::string_view node, std::vector<std::string> events,
                             const session::event_queue_limits& limits, completion<session::queue_status> done) override;
    GATEHOUSE_DECL void append(std::string_view session_id, std::string_view event,
                               const session::event_queue_limits& limits,
                               completion<session::queue_status> done) override;
    GATEHOUSE_DECL void take(std::string_view session_id, std::string_view node,
                             const session::event_queue_limits& limits,
                             completion<session::taken_events> done) override;
    GATEHOUSE_DECL void discard(std::string_view session_id, done_completion done) override;

private:
    /// Posted, never dispatched: an operation called from a completion (on
    /// the strand) must not overtake the ones already waiting to run.
    template <class Operation>
    void run(Operation&& op);

    GATEHOUSE_DECL static redis_session_store_options validated(redis_session_store_options o);

    session::session_timing timing_;
    std::shared_ptr<detail::redis_session_core> core_;
};

}  // namespace gatehouse::adapters::redis

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/adapters/redis/impl/redis_session_store.ipp>
#endif
