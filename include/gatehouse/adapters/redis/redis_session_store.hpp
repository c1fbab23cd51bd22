// redis_session_store: a session_store in Redis (hiredis 0.14, asynchronous,
// driven by the host's Asio executor). Sessions survive gateway restarts and
// are shared by every node that points at the same Redis.
//
// Threading: operations may be called from any thread. All Redis work runs
// on a strand of the executor given to the constructor; every completion is
// called on that strand (so on a thread running the host's io_context), never
// inline in the caller unless the caller already runs on the strand. Nothing
// ever blocks: commands are pipelined on one connection (commands issued in
// the same turn of the event loop leave in one write).
//
// Failure: the store connects by itself and reconnects after a loss (backoff
// between reconnect_delay_min and reconnect_delay_max). While disconnected,
// operations fail at once with session_errc::backend_unavailable; a command
// without an answer after command_timeout fails with session_errc::timeout
// and the connection is dropped and re-established (Redis answers in order,
// so a stuck command means a stuck connection). No operation ever hangs.
//
// Requires Redis 7.0 or later (SET ... XX GET, PEXPIRE ... LT, Lua EVAL).
//
// Lifetime: destroy (or close()) the store before its io_context; pending
// operations then complete with session_errc::store_closed as long as the
// io_context still runs.
//
// Key schema (P = key_prefix, default "gatehouse:"):
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
//   P acct:{account} set    session ids of the account; TTL max_lifetime +
//                           tombstone_retention from its newest session
// Multi-key changes run as Lua scripts (atomic); load is one MGET of two keys
// and touch one SET ... XX GET, close to the cost of a plain GET / SET.
//
// Differences from memory_session_store: touch only slides the idle expiry
// and does not look at max_lifetime (load, update, revoke, list and token
// operations do, and report expired); a session that expired while idle keeps
// its record in Redis until it is next looked at or its max_lifetime passes.
#pragma once

#include <gatehouse/adapters/redis/detail/hiredis_asio.hpp>
#include <gatehouse/adapters/redis/detail/record_codec.hpp>
#include <gatehouse/adapters/redis/detail/session_scripts.hpp>
#include <gatehouse/session/session_store.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::adapters::redis {

struct redis_session_store_options : session::session_store_options {
    /// An IP address. hiredis resolves a host name with a blocking
    /// getaddrinfo on every (re)connect, on the executor's thread: prefer an
    /// address, or resolve the name once at start-up.
    std::string host = "127.0.0.1";
    int port = 6379;
    /// Sent with AUTH after every connect when not empty. Never logged.
    std::string password;
    /// SELECTed after every connect when not 0.
    int database = 0;
    /// Prepended to every key; lets several deployments share one Redis.
    std::string key_prefix = "gatehouse:";
    /// Longest wait for an answer before an operation fails with `timeout`.
    std::chrono::milliseconds command_timeout{1000};
    std::chrono::milliseconds reconnect_delay_min{50};
    std::chrono::milliseconds reconnect_delay_max{1000};
};

namespace detail {

using session::session_errc;
using session::session_record;
using session::time_point;

/// Error of a reply that Redis sent as an error: WRONGTYPE (a key holds a
/// value of another Redis type) is a reply of the wrong type; anything else
/// (OOM, READONLY, NOAUTH, script errors) is a backend error.
inline std::error_code error_of(const redisReply* reply) noexcept {
    if (reply->type != REDIS_REPLY_ERROR) return {};
    if (reply->str != nullptr && std::strstr(reply->str, "WRONGTYPE") != nullptr) return session_errc::bad_reply;
    return session_errc::backend_error;
}

inline std::string_view text_of(const redisReply* reply) noexcept {
    return {reply->str, reply->len};
}

inline std::error_code state_error(long long code) noexcept {
    switch (code) {
    case 0: return session_errc::not_found;
    case 1: return session_errc::revoked;
    case 2: return session_errc::expired;
    case 3: return session_errc::corrupt_record;
    default: return session_errc::bad_reply;
    }
}

class redis_session_core : public std::enable_shared_from_this<redis_session_core> {
public:
    using strand_type = asio::strand<asio::any_io_executor>;
    using reply_handler = std::function<void(std::error_code, redisReply*)>;
    template <class T>
    using completion = session::session_store::completion<T>;
    using done_completion = session::session_store::done_completion;

    redis_session_core(const asio::any_io_executor& executor, redis_session_store_options options)
        : strand_(asio::make_strand(executor)),
          options_(std::move(options)),
          timeout_timer_(strand_),
          reconnect_timer_(strand_),
          backoff_(options_.reconnect_delay_min) {}

    ~redis_session_core() {
        // Only reached without close() when the io_context died first.
        if (context_ != nullptr) {
            for (auto& cmd : pending_) cmd->finished = true;
            auto* c = std::exchange(context_, nullptr);
            redisAsyncFree(c);
        }
    }

    const strand_type& strand() const noexcept { return strand_; }
    bool connected() const noexcept { return connected_.load(std::memory_order_relaxed); }

    void start() { connect(); }

    void close() {
        if (closed_) return;
        closed_ = true;
        timeout_timer_.cancel();
        reconnect_timer_.cancel();
        fail_all(session_errc::store_closed);
        drop_connection();
    }

    // --- operations (on the strand) ------------------------------------------

    void create(session_record record, completion<session_record> done) {
        if (auto ec = session::validate_record(record, options_.limits)) return done(ec, {});
        if (record.session_id.empty()) record.session_id = session::random_session_id();
        const auto now = session::now_ms();
        record.created_at = now;
        record.last_activity = now;
        record.reconnect_expires_at = {};
        record.expires_at = std::min(now + options_.idle_timeout, now + options_.max_lifetime);
        const auto record_ttl = options_.max_lifetime + options_.tombstone_retention;
        const auto activity_ttl = std::min(options_.idle_timeout, options_.max_lifetime);
        // Arguments are built before the record moves into the completion.
        const auto value = encode_record(record);
        const auto id = record.session_id;
        const auto account_key = key("acct:", record.account_id);
        eval(create_script, {key("s:", id), key("a:", id), account_key},
             {value, ms(record_ttl), ms(activity_ttl), ms_text(now), id, ms(record_ttl)},
             [done = std::move(done), record = std::move(record)](std::error_code ec, redisReply* reply) mutable {
                 if (ec) return done(ec, {});
                 if ((ec = error_of(reply))) return done(ec, {});
                 if (reply->type != REDIS_REPLY_INTEGER) return done(session_errc::bad_reply, {});
                 if (reply->integer == 0) return done(session_errc::already_exists, {});
                 if (reply->integer != 1) return done(session_errc::bad_reply, {});
                 done({}, std::move(record));
             });
    }

    void load(std::string id, completion<session_record> done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id, {});
        const auto sk = key("s:", id), ak = key("a:", id);
        command({"MGET", sk, ak}, [self = shared_from_this(), id = std::move(id),
                                   done = std::move(done)](std::error_code ec, redisReply* reply) mutable {
            if (ec) return done(ec, {});
            if ((ec = error_of(reply))) return done(ec, {});
            if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return done(session_errc::bad_reply, {});
            session_record record;
            ec = self->decode_live(std::move(id), reply->element[0], reply->element[1], record);
            if (ec == session_errc::not_found) return self->classify_missing(record.session_id, std::move(done));
            if (ec == session_errc::expired && !record.account_id.empty())
                self->forget_expired(record.session_id, record.account_id);
            if (ec) return done(ec, {});
            done({}, std::move(record));
        });
    }

    void touch(std::string id, done_completion done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id);
        const auto now = ms_text(session::now_ms());
        auto ak = key("a:", id);
        command({"SET", ak, now, "XX", "PX", ms(options_.idle_timeout), "GET"},
                [self = shared_from_this(), id, done = std::move(done)](std::error_code ec, redisReply* reply) mutable {
                    if (ec) return done(ec);
                    if ((ec = error_of(reply))) return done(ec);
                    if (reply->type == REDIS_REPLY_STRING) return done({});
                    if (reply->type != REDIS_REPLY_NIL) return done(session_errc::bad_reply);
                    // No activity key: expired, revoked, unknown, or held only
                    // by its reconnection token (then live: record activity).
                    self->load(id, [self, id, done = std::move(done)](std::error_code ec, session_record) mutable {
                        if (ec) return done(ec);
                        self->command({"SET", self->key("a:", id), ms_text(session::now_ms()), "PX",
                                       ms(self->options_.idle_timeout)},
                                      [done = std::move(done)](std::error_code ec, redisReply* reply) {
                                          if (ec) return done(ec);
                                          done(error_of(reply));
                                      });
                    });
                });
    }

    void update(session_record record, completion<session_record> done) {
        if (!session::is_session_id(record.session_id)) return done(session_errc::invalid_session_id, {});
        record.account_id = "-";  // immutable, ignored: validate the rest
        if (auto ec = session::validate_record(record, options_.limits)) return done(ec, {});
        const auto& id = record.session_id;
        eval(update_script, {key("s:", id), key("a:", id)},
             {encode_mutable(record), ms_text(session::now_ms()), ms(options_.max_lifetime)},
             [self = shared_from_this(), id, done = std::move(done)](std::error_code ec, redisReply* reply) mutable {
                 if (ec) return done(ec, {});
                 if ((ec = error_of(reply))) return done(ec, {});
                 if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
                     reply->element[0]->type != REDIS_REPLY_INTEGER)
                     return done(session_errc::bad_reply, {});
                 if (reply->element[0]->integer != 4) return done(state_error(reply->element[0]->integer), {});
                 if (reply->elements != 3) return done(session_errc::bad_reply, {});
                 session_record stored;
                 ec = self->decode_live(id, reply->element[1], reply->element[2], stored);
                 if (ec) return done(ec, {});
                 done({}, std::move(stored));
             });
    }

    void revoke(std::string id, done_completion done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id);
        eval(revoke_script, {key("s:", id), key("a:", id)},
             {options_.key_prefix, id, ms(options_.tombstone_retention), ms_text(session::now_ms()),
              ms(options_.max_lifetime)},
             [done = std::move(done)](std::error_code ec, redisReply* reply) {
                 if (ec) return done(ec);
                 if ((ec = error_of(reply))) return done(ec);
                 if (reply->type != REDIS_REPLY_INTEGER) return done(session_errc::bad_reply);
                 done(reply->integer == 4 ? std::error_code{} : state_error(reply->integer));
             });
    }

    void revoke_account(std::string account, completion<std::size_t> done) {
        if (account.empty() || account.size() > options_.limits.max_account_id_size)
            return done(session_errc::invalid_account_id, 0);
        eval(revoke_account_script, {key("acct:", account)},
             {options_.key_prefix, ms(options_.tombstone_retention), ms_text(session::now_ms()),
              ms(options_.max_lifetime)},
             [done = std::move(done)](std::error_code ec, redisReply* reply) {
                 if (ec) return done(ec, 0);
                 if ((ec = error_of(reply))) return done(ec, 0);
                 if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0) return done(session_errc::bad_reply, 0);
                 done({}, static_cast<std::size_t>(reply->integer));
             });
    }

    void list_account(std::string account, completion<std::vector<session_record>> done) {
        if (account.empty() || account.size() > options_.limits.max_account_id_size)
            return done(session_errc::invalid_account_id, {});
        eval(list_account_script, {key("acct:", account)},
             {options_.key_prefix, ms_text(session::now_ms()), ms(options_.max_lifetime)},
             [self = shared_from_this(), done = std::move(done)](std::error_code ec, redisReply* reply) {
                 if (ec) return done(ec, {});
                 if ((ec = error_of(reply))) return done(ec, {});
                 if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 3 != 0)
                     return done(session_errc::bad_reply, {});
                 std::vector<session_record> live;
                 live.reserve(reply->elements / 3);
                 for (std::size_t i = 0; i < reply->elements; i += 3) {
                     const auto* id = reply->element[i];
                     if (id->type != REDIS_REPLY_STRING) return done(session_errc::bad_reply, {});
                     session_record record;
                     ec = self->decode_live(std::string(text_of(id)), reply->element[i + 1], reply->element[i + 2],
                                            record);
                     if (ec == session_errc::expired) continue;  // lifetime ran out during the call
                     if (ec) return done(ec, {});
                     live.push_back(std::move(record));
                 }
                 done({}, std::move(live));
             });
    }

    void issue_reconnect_token(std::string id, std::chrono::milliseconds window, completion<session::reconnect_token> done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id, {});
        if (window <= std::chrono::milliseconds::zero() || window > options_.max_reconnect_window)
            return done(session_errc::invalid_window, {});
        session::reconnect_token issued;
        issued.token = session::random_reconnect_token();
        const auto now = session::now_ms();
        issued.expires_at = now + window;
        const auto hash = session::reconnect_token_hash(issued.token);  // before `issued` moves
        eval(issue_token_script, {key("s:", id), key("a:", id)},
             {options_.key_prefix, id, hash, ms(window), decimal16(to_ms(issued.expires_at)), ms_text(now),
              ms(options_.max_lifetime)},
             [done = std::move(done), issued = std::move(issued)](std::error_code ec, redisReply* reply) mutable {
                 if (ec) return done(ec, {});
                 if ((ec = error_of(reply))) return done(ec, {});
                 if (reply->type != REDIS_REPLY_INTEGER) return done(session_errc::bad_reply, {});
                 if (reply->integer != 4) return done(state_error(reply->integer), {});
                 done({}, std::move(issued));
             });
    }

    void consume_reconnect_token(std::string token, completion<session_record> done) {
        if (!session::is_reconnect_token(token)) return done(session_errc::token_invalid, {});
        const auto hash = session::reconnect_token_hash(token);
        eval(consume_token_script, {key("t:", hash)},
             {options_.key_prefix, hash, ms_text(session::now_ms()), ms(options_.max_lifetime),
              ms(options_.idle_timeout)},
             [self = shared_from_this(), done = std::move(done)](std::error_code ec, redisReply* reply) {
                 if (ec) return done(ec, {});
                 if ((ec = error_of(reply))) return done(ec, {});
                 if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
                     reply->element[0]->type != REDIS_REPLY_INTEGER)
                     return done(session_errc::bad_reply, {});
                 const auto** e = const_cast<const redisReply**>(reply->element);
                 switch (e[0]->integer) {
                 case 0: return done(session_errc::token_invalid, {});
                 case 1: return done(session_errc::token_consumed, {});
                 case 2:
                     if (reply->elements != 2 || e[1]->type != REDIS_REPLY_INTEGER)
                         return done(session_errc::bad_reply, {});
                     return done(state_error(e[1]->integer), {});
                 case 3: {
                     if (reply->elements != 4 || e[1]->type != REDIS_REPLY_STRING)
                         return done(session_errc::bad_reply, {});
                     session_record record;
                     ec = self->decode_live(std::string(text_of(e[1])), e[2], e[3], record);
                     if (ec) return done(ec, {});
                     return done({}, std::move(record));
                 }
                 default: return done(session_errc::bad_reply, {});
                 }
             });
    }

private:
    struct pending_command {
        reply_handler handler;
        std::chrono::steady_clock::time_point deadline;
        bool finished = false;
    };

    static std::string ms(std::chrono::milliseconds d) { return std::to_string(std::max<long long>(1, d.count())); }
    static std::string ms_text(time_point t) { return std::to_string(t.time_since_epoch().count()); }
    static std::string decimal16(std::uint64_t v) {
        auto text = std::to_string(v);
        return std::string(16 - std::min<std::size_t>(16, text.size()), '0') + text;
    }

    std::string key(std::string_view kind, std::string_view name) const {
        std::string k;
        k.reserve(options_.key_prefix.size() + kind.size() + name.size());
        k.append(options_.key_prefix).append(kind).append(name);
        return k;
    }

    /// A session record from the values of its two keys (record, activity).
    /// Fills `out` as far as decoded, even on `expired`.
    std::error_code decode_live(std::string id, const redisReply* s, const redisReply* a, session_record& out) const {
        out.session_id = std::move(id);
        for (const auto* part : {s, a}) {
            if (auto ec = error_of(part)) return ec;
            if (part->type != REDIS_REPLY_NIL && part->type != REDIS_REPLY_STRING) return session_errc::bad_reply;
        }
        if (s->type == REDIS_REPLY_NIL) return session_errc::not_found;
        const auto value = text_of(s);
        if (value == revoked_tombstone) return session_errc::revoked;
        reconnect_segment reconnect;
        if (!decode_record(value, out, reconnect)) return session_errc::corrupt_record;
        const auto now = session::now_ms();
        const auto life_end = out.created_at + options_.max_lifetime;
        if (now >= life_end) return session_errc::expired;
        // A token past its window no longer holds the session.
        const bool held = reconnect.expires_ms != 0 && from_ms(reconnect.expires_ms) > now;
        if (a->type == REDIS_REPLY_NIL && !held) return session_errc::expired;
        std::uint64_t last = reconnect.last_activity_ms;
        if (a->type == REDIS_REPLY_STRING && !parse_ms(text_of(a), last)) return session_errc::corrupt_record;
        out.reconnect_expires_at = held ? from_ms(reconnect.expires_ms) : time_point{};
        out.last_activity = from_ms(last);
        out.expires_at = std::min(life_end, std::max(out.last_activity + options_.idle_timeout, out.reconnect_expires_at));
        return {};
    }

    /// MGET returns nil for a key of another type: tell "absent" from "holds
    /// something that is not a record".
    void classify_missing(const std::string& id, completion<session_record> done) {
        command({"TYPE", key("s:", id)}, [done = std::move(done)](std::error_code ec, redisReply* reply) {
            if (ec) return done(ec, {});
            if ((ec = error_of(reply))) return done(ec, {});
            if (reply->type != REDIS_REPLY_STATUS) return done(session_errc::bad_reply, {});
            done(text_of(reply) == "none" ? session_errc::not_found : session_errc::bad_reply, {});
        });
    }

    /// An idle-expired session found by a lookup: keep its record only for
    /// tombstone_retention and drop it from its account's index.
    void forget_expired(const std::string& id, const std::string& account) {
        command({"PEXPIRE", key("s:", id), ms(options_.tombstone_retention), "LT"}, [](std::error_code, redisReply*) {});
        command({"SREM", key("acct:", account), id}, [](std::error_code, redisReply*) {});
    }

    void eval(const char* script, std::initializer_list<std::string> keys, std::initializer_list<std::string> args,
              reply_handler handler) {
        const auto nkeys = std::to_string(keys.size());
        std::vector<std::string_view> argv;
        argv.reserve(3 + keys.size() + args.size());
        argv.push_back("EVAL");
        argv.push_back(script);
        argv.push_back(nkeys);
        for (const auto& k : keys) argv.push_back(k);
        for (const auto& a : args) argv.push_back(a);
        send(argv.data(), argv.size(), std::move(handler));
    }

    void command(std::initializer_list<std::string_view> args, reply_handler handler) {
        send(args.begin(), args.size(), std::move(handler));
    }

    void send(const std::string_view* args, std::size_t count, reply_handler handler) {
        if (closed_) return handler(session_errc::store_closed, nullptr);
        if (context_ == nullptr) return handler(session_errc::backend_unavailable, nullptr);
        constexpr std::size_t max_args = 32;
        if (count > max_args) return handler(session_errc::backend_error, nullptr);
        std::array<const char*, max_args> argv{};
        std::array<std::size_t, max_args> lengths{};
        for (std::size_t i = 0; i < count; ++i) {
            argv[i] = args[i].data();
            lengths[i] = args[i].size();
        }
        auto cmd = std::make_unique<pending_command>();
        cmd->handler = std::move(handler);
        cmd->deadline = std::chrono::steady_clock::now() + options_.command_timeout;
        if (redisAsyncCommandArgv(context_, &redis_session_core::on_reply, cmd.get(), static_cast<int>(count),
                                  argv.data(), lengths.data()) != REDIS_OK)
            return cmd->handler(session_errc::backend_unavailable, nullptr);
        pending_.push_back(std::move(cmd));
        arm_timeout();
    }

    static void on_reply(redisAsyncContext* context, void* reply, void* privdata) {
        static_cast<redis_session_core*>(context->data)
            ->complete(static_cast<pending_command*>(privdata), static_cast<redisReply*>(reply));
    }

    void complete(pending_command* cmd, redisReply* reply) {
        // Redis answers in order: the command is the oldest one.
        auto it = std::find_if(pending_.begin(), pending_.end(), [cmd](const auto& p) { return p.get() == cmd; });
        if (it == pending_.end()) return;
        auto owned = std::move(*it);
        pending_.erase(it);
        if (owned->finished) return;
        if (reply == nullptr) {
            // The connection is going away inside hiredis: complete later,
            // outside hiredis, so that the completion may issue new calls.
            asio::post(strand_, [handler = std::move(owned->handler)] {
                handler(session_errc::backend_unavailable, nullptr);
            });
            return;
        }
        owned->handler({}, reply);
    }

    void fail_all(session_errc why) {
        for (auto& cmd : pending_) {
            if (cmd->finished) continue;
            cmd->finished = true;
            asio::post(strand_, [handler = std::move(cmd->handler), why] { handler(why, nullptr); });
        }
    }

    void arm_timeout() {
        if (timeout_armed_ || pending_.empty() || closed_) return;
        timeout_armed_ = true;
        timeout_timer_.expires_at(pending_.front()->deadline);
        timeout_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            self->timeout_armed_ = false;
            if (ec || self->closed_) return;
            self->check_timeouts();
        });
    }

    void check_timeouts() {
        auto oldest = std::find_if(pending_.begin(), pending_.end(), [](const auto& p) { return !p->finished; });
        if (oldest == pending_.end()) return;
        if ((*oldest)->deadline > std::chrono::steady_clock::now()) return arm_timeout_at((*oldest)->deadline);
        fail_all(session_errc::timeout);
        drop_connection();
        schedule_reconnect();
    }

    void arm_timeout_at(std::chrono::steady_clock::time_point deadline) {
        timeout_armed_ = true;
        timeout_timer_.expires_at(deadline);
        timeout_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            self->timeout_armed_ = false;
            if (ec || self->closed_) return;
            self->check_timeouts();
        });
    }

    void drop_connection() {
        connected_.store(false, std::memory_order_relaxed);
        if (context_ == nullptr) return;
        for (auto& cmd : pending_) cmd->finished = true;
        auto* c = std::exchange(context_, nullptr);
        redisAsyncFree(c);  // runs the remaining callbacks with no reply; they are finished
    }

    void connect() {
        if (closed_ || context_ != nullptr) return;
        redisAsyncContext* c = redisAsyncConnect(options_.host.c_str(), options_.port);
        if (c == nullptr) return schedule_reconnect();
        if (c->err != 0 || !hiredis_asio_binding::attach(c, strand_)) {
            redisAsyncFree(c);
            return schedule_reconnect();
        }
        c->data = this;
        context_ = c;
        redisAsyncSetDisconnectCallback(c, &redis_session_core::on_disconnect);
        redisAsyncSetConnectCallback(c, &redis_session_core::on_connect);
        if (!options_.password.empty()) command({"AUTH", options_.password}, [](std::error_code, redisReply*) {});
        if (options_.database != 0)
            command({"SELECT", std::to_string(options_.database)}, [](std::error_code, redisReply*) {});
    }

    static void on_connect(const redisAsyncContext* context, int status) {
        auto* self = static_cast<redis_session_core*>(context->data);
        if (context != self->context_) return;
        if (status == REDIS_OK) {
            self->connected_.store(true, std::memory_order_relaxed);
            self->backoff_ = self->options_.reconnect_delay_min;
            return;
        }
        // hiredis frees the context after this callback.
        self->context_ = nullptr;
        self->schedule_reconnect();
    }

    static void on_disconnect(const redisAsyncContext* context, int) {
        auto* self = static_cast<redis_session_core*>(context->data);
        if (context != self->context_) return;  // we dropped it ourselves
        self->context_ = nullptr;
        self->connected_.store(false, std::memory_order_relaxed);
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
    redis_session_store_options options_;
    asio::steady_timer timeout_timer_;
    asio::steady_timer reconnect_timer_;
    std::chrono::milliseconds backoff_;
    redisAsyncContext* context_ = nullptr;
    std::deque<std::unique_ptr<pending_command>> pending_;
    bool timeout_armed_ = false;
    bool closed_ = false;
    std::atomic<bool> connected_{false};
};

}  // namespace detail

class redis_session_store final : public session::session_store {
public:
    /// Starts connecting at once (asynchronously). Throws std::invalid_argument
    /// for invalid options (start-up configuration).
    redis_session_store(const asio::any_io_executor& executor, redis_session_store_options options)
        : core_(std::make_shared<detail::redis_session_core>(executor, validated(std::move(options)))) {
        asio::dispatch(core_->strand(), [core = core_] { core->start(); });
    }

    ~redis_session_store() override { close(); }

    redis_session_store(const redis_session_store&) = delete;
    redis_session_store& operator=(const redis_session_store&) = delete;

    /// Stops: pending and later operations complete with store_closed.
    void close() {
        asio::dispatch(core_->strand(), [core = core_] { core->close(); });
    }

    /// Whether the connection to Redis is up right now (for health checks).
    bool connected() const noexcept { return core_->connected(); }

    void create(session::session_record record, completion<session::session_record> done) override {
        run([record = std::move(record), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.create(std::move(record), std::move(done));
        });
    }
    void load(std::string_view session_id, completion<session::session_record> done) override {
        run([id = std::string(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.load(std::move(id), std::move(done));
        });
    }
    void touch(std::string_view session_id, done_completion done) override {
        run([id = std::string(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.touch(std::move(id), std::move(done));
        });
    }
    void update(session::session_record record, completion<session::session_record> done) override {
        run([record = std::move(record), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.update(std::move(record), std::move(done));
        });
    }
    void revoke(std::string_view session_id, done_completion done) override {
        run([id = std::string(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.revoke(std::move(id), std::move(done));
        });
    }
    void revoke_account(std::string_view account_id, completion<std::size_t> done) override {
        run([account = std::string(account_id), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.revoke_account(std::move(account), std::move(done));
        });
    }
    void list_account(std::string_view account_id, completion<std::vector<session::session_record>> done) override {
        run([account = std::string(account_id), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.list_account(std::move(account), std::move(done));
        });
    }
    void issue_reconnect_token(std::string_view session_id, std::chrono::milliseconds window,
                               completion<session::reconnect_token> done) override {
        run([id = std::string(session_id), window, done = std::move(done)](detail::redis_session_core& c) mutable {
            c.issue_reconnect_token(std::move(id), window, std::move(done));
        });
    }
    void consume_reconnect_token(std::string_view token, completion<session::session_record> done) override {
        run([token = std::string(token), done = std::move(done)](detail::redis_session_core& c) mutable {
            c.consume_reconnect_token(std::move(token), std::move(done));
        });
    }

private:
    template <class Operation>
    void run(Operation&& op) {
        asio::dispatch(core_->strand(), [core = core_, op = std::forward<Operation>(op)]() mutable { op(*core); });
    }

    static redis_session_store_options validated(redis_session_store_options o) {
        if (o.host.empty()) throw std::invalid_argument("redis_session_store: host is empty");
        if (o.port <= 0 || o.port > 65535) throw std::invalid_argument("redis_session_store: port out of range");
        if (o.key_prefix.empty()) throw std::invalid_argument("redis_session_store: key_prefix is empty");
        if (o.command_timeout.count() <= 0 || o.reconnect_delay_min.count() <= 0 ||
            o.reconnect_delay_max < o.reconnect_delay_min)
            throw std::invalid_argument("redis_session_store: timeouts must be positive (and max >= min delay)");
        if (o.idle_timeout.count() <= 0 || o.max_lifetime.count() <= 0 || o.tombstone_retention.count() <= 0 ||
            o.max_reconnect_window.count() <= 0)
            throw std::invalid_argument("redis_session_store: session durations must be positive");
        return o;
    }

    std::shared_ptr<detail::redis_session_core> core_;
};

}  // namespace gatehouse::adapters::redis
