// Implementation of gatehouse/adapters/redis/redis_session_store.hpp: the
// store's core (the operations and their replies) over one redis_link.
#pragma once

#include <gatehouse/adapters/redis/redis_session_store.hpp>

#include <gatehouse/adapters/redis/detail/record_codec.hpp>
#include <gatehouse/adapters/redis/detail/redis_link.hpp>
#include <gatehouse/adapters/redis/detail/resp_writer.hpp>
#include <gatehouse/adapters/redis/detail/session_scripts.hpp>

#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::adapters::redis {

namespace detail {

using session::event_queue_limits;
using session::queue_status;
using session::session_errc;
using session::session_record;
using session::taken_events;
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

inline constexpr std::size_t session_id_size = 36;  // see session::is_session_id

// In Redis a session id is stored without its four dashes (32 hex digits):
// "gatehouse:s:" and 32 digits make 44 bytes, the longest string Redis keeps
// in one allocation (OBJ_ENCODING_EMBSTR_SIZE_LIMIT). Longer key arguments
// cost Redis an allocation more per key and command; measured over 10,000
// sessions, MGET of two 47-byte keys took Redis 1.1 to 2.7 times the CPU of
// MGET of two 43-byte ones (five runs on a busy 2-core machine).
inline constexpr std::size_t stored_id_size = 32;

/// `id` must be a valid session id (session::is_session_id).
inline void write_stored_id(std::string_view id, char* out) noexcept {
    std::size_t n = 0;
    for (const char c : id)
        if (c != '-') out[n++] = c;
}

inline std::string stored_id(std::string_view id) {
    std::string out(stored_id_size, '\0');
    write_stored_id(id, out.data());
    return out;
}

/// The session id of an id as stored; false when `stored` is not one.
inline bool session_id_of_stored(std::string_view stored, std::string& id) {
    if (stored.size() != stored_id_size) return false;
    id.clear();
    id.reserve(session_id_size);
    for (std::size_t i = 0; i < stored_id_size; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) id.push_back('-');
        id.push_back(stored[i]);
    }
    return session::is_session_id(id);
}

/// A key argument: prefix + kind + the session id `id` (valid) as stored;
/// needs resp_writer::arg_room(prefix.size() + kind.size() + stored_id_size).
inline void write_session_key(resp_writer& out, std::string_view prefix, std::string_view kind,
                              std::string_view id) noexcept {
    char* p = out.begin_arg(prefix.size() + kind.size() + stored_id_size);
    std::memcpy(p, prefix.data(), prefix.size());
    std::memcpy(p + prefix.size(), kind.data(), kind.size());
    write_stored_id(id, p + prefix.size() + kind.size());
    out.end_arg();
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
          link_(*this, strand_, options_,
                {session_errc::store_closed, session_errc::backend_unavailable, session_errc::timeout,
                 session_errc::bad_reply}),
          idle_timeout_text_(ms(options_.idle_timeout)) {
        for (std::size_t i = 0; i < all_scripts.size(); ++i) script_shas_[i] = script_sha1(all_scripts[i]);
    }

    // Only reached without close() when the io_context died first: the
    // pending completions are destroyed without being called.
    ~redis_session_core() = default;

    redis_session_core(const redis_session_core&) = delete;
    redis_session_core& operator=(const redis_session_core&) = delete;

    const strand_type& strand() const noexcept { return strand_; }
    bool connected() const noexcept { return link_.connected(); }

    void start() { link_.start(); }

    void close() { link_.close(); }

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
        const auto id = stored_id(record.session_id);
        const auto account_key = key("acct:", record.account_id);
        eval(script_id::create, {key("s:", id), key("a:", id), account_key},
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

    void load(std::string_view id, completion<session_record> done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id, {});
        const auto key_room = resp_writer::arg_room(options_.key_prefix.size() + 2 + stored_id_size);
        auto out = link_.begin_command(resp_writer::header_room + resp_writer::arg_room(4) + 2 * key_room);
        out.array(3);
        out.arg("MGET");
        write_session_key(out, options_.key_prefix, "s:", id);
        write_session_key(out, options_.key_prefix, "a:", id);
        link_.end_command(out);
        pending_command cmd;
        cmd.route = reply_route::load;
        std::memcpy(cmd.id.data(), id.data(), cmd.id.size());
        cmd.loaded = std::move(done);
        send(std::move(cmd));
    }

    void touch(std::string_view id, done_completion done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id);
        auto out = link_.begin_command(resp_writer::header_room + 6 * resp_writer::arg_room(20) +
                                       resp_writer::arg_room(options_.key_prefix.size() + 2 + stored_id_size));
        out.array(7);
        out.arg("SET");
        write_session_key(out, options_.key_prefix, "a:", id);
        out.number(session::now_ms().time_since_epoch().count());
        out.arg("XX");
        out.arg("PX");
        out.arg(idle_timeout_text_);
        out.arg("GET");
        link_.end_command(out);
        pending_command cmd;
        cmd.route = reply_route::touch;
        std::memcpy(cmd.id.data(), id.data(), cmd.id.size());
        cmd.touched = std::move(done);
        send(std::move(cmd));
    }

    void update(session_record record, completion<session_record> done) {
        if (!session::is_session_id(record.session_id)) return done(session_errc::invalid_session_id, {});
        record.account_id = "-";  // immutable, ignored: validate the rest
        if (auto ec = session::validate_record(record, options_.limits)) return done(ec, {});
        const auto& id = record.session_id;
        eval(script_id::update, {key("s:", stored_id(id)), key("a:", stored_id(id))},
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
        const auto stored = stored_id(id);
        eval(script_id::revoke, {key("s:", stored), key("a:", stored)},
             {options_.key_prefix, stored, ms(options_.tombstone_retention), ms_text(session::now_ms()),
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
        eval(script_id::revoke_account, {key("acct:", account)},
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
        eval(script_id::list_account, {key("acct:", account)},
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
                     std::string session_id;
                     if (!session_id_of_stored(text_of(id), session_id)) return done(session_errc::bad_reply, {});
                     ec = self->decode_live(std::move(session_id), reply->element[i + 1], reply->element[i + 2],
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
        const auto stored = stored_id(id);
        eval(script_id::issue_token, {key("s:", stored), key("a:", stored)},
             {options_.key_prefix, stored, hash, ms(window), decimal16(to_ms(issued.expires_at)), ms_text(now),
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
        eval(script_id::consume_token, {key("t:", hash)},
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
                     std::string session_id;
                     if (!session_id_of_stored(text_of(e[1]), session_id)) return done(session_errc::bad_reply, {});
                     ec = self->decode_live(std::move(session_id), e[2], e[3], record);
                     if (ec) return done(ec, {});
                     return done({}, std::move(record));
                 }
                 default: return done(session_errc::bad_reply, {});
                 }
             });
    }

    // --- event queues (event_queue_store) ------------------------------------

    void park(std::string_view id, std::string_view node, std::vector<std::string> events,
              const event_queue_limits& limits, completion<queue_status> done) {
        if (auto ec = check_queue_call(id, limits)) return done(ec, {});
        if (auto ec = session::validate_queue_node(node)) return done(ec, {});
        // Only the newest events that fit the limits can stay: the others are
        // counted as evicted here and not sent (park's batch is bounded by
        // the limits, whatever the caller passes). Events larger than
        // max_bytes never fit.
        std::size_t first = events.size();  // of the newest events that fit
        std::size_t count = 0, bytes = 0, too_large = 0;
        for (; first > 0; --first) {
            const auto size = events[first - 1].size();
            if (size > limits.max_bytes) {
                ++too_large;
                continue;
            }
            if (count + 1 > limits.max_events || bytes + size > limits.max_bytes) break;
            ++count;
            bytes += size;
        }
        const std::size_t dropped_here = first + too_large;
        std::vector<std::string> kept;
        kept.reserve(count);
        for (std::size_t i = first; i < events.size(); ++i)
            if (events[i].size() <= limits.max_bytes) kept.push_back(std::move(events[i]));
        const auto stored = stored_id(id);
        eval(script_id::park, {key("q:", stored), key("qm:", stored)},
             {std::string(node), std::to_string(limits.max_events), std::to_string(limits.max_bytes),
              queue_ms(limits.max_age), queue_ms(limits.retention)},
             kept,
             [dropped_here, done = std::move(done)](std::error_code ec, redisReply* reply) {
                 queue_status status;
                 if (!ec) ec = queue_status_of(reply, false, status);
                 if (ec) return done(ec, {});
                 if (status.queued) status.evicted += dropped_here;
                 done({}, std::move(status));
             });
    }

    void append(std::string_view id, std::string_view event, const event_queue_limits& limits,
                completion<queue_status> done) {
        if (auto ec = check_queue_call(id, limits)) return done(ec, {});
        if (event.size() > limits.max_bytes) return done(session_errc::event_too_large, {});
        const auto stored = stored_id(id);
        eval(script_id::append, {key("q:", stored), key("qm:", stored)},
             {std::string(event), std::to_string(limits.max_events), std::to_string(limits.max_bytes),
              queue_ms(limits.max_age)},
             [done = std::move(done)](std::error_code ec, redisReply* reply) {
                 queue_status status;
                 if (!ec) ec = queue_status_of(reply, true, status);
                 if (ec) return done(ec, {});
                 done({}, std::move(status));
             });
    }

    void take(std::string_view id, std::string_view node, const event_queue_limits& limits,
              completion<taken_events> done) {
        if (auto ec = check_queue_call(id, limits)) return done(ec, {});
        if (auto ec = session::validate_queue_node(node)) return done(ec, {});
        const auto stored = stored_id(id);
        eval(script_id::take, {key("q:", stored), key("qm:", stored)}, {std::string(node), queue_ms(limits.retention)},
             [max_age = limits.max_age, done = std::move(done)](std::error_code ec, redisReply* reply) {
                 if (ec) return done(ec, {});
                 if ((ec = error_of(reply))) return done(ec, {});
                 if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                     reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[1]->type != REDIS_REPLY_ARRAY)
                     return done(session_errc::bad_reply, {});
                 // Ages by Redis's clock, the one that stamped the entries.
                 const long long now = reply->element[0]->integer;
                 const long long cutoff =
                     max_age.count() >= now ? std::numeric_limits<long long>::min() : now - max_age.count();
                 const auto* entries = reply->element[1];
                 taken_events taken;
                 taken.events.reserve(entries->elements);
                 for (std::size_t i = 0; i < entries->elements; ++i) {
                     const auto* e = entries->element[i];
                     if (e->type != REDIS_REPLY_STRING) return done(session_errc::bad_reply, {});
                     const auto text = text_of(e);
                     long long at = 0;
                     const auto bar = text.find('|');
                     const auto parsed =
                         bar == std::string_view::npos ? std::from_chars_result{nullptr, std::errc::invalid_argument}
                                                       : std::from_chars(text.data(), text.data() + bar, at);
                     if (parsed.ec != std::errc{} || parsed.ptr != text.data() + bar || at < cutoff) {
                         ++taken.dropped;  // too old, or not an entry this store wrote
                         continue;
                     }
                     taken.events.emplace_back(text.substr(bar + 1));
                 }
                 done({}, std::move(taken));
             });
    }

    void discard(std::string_view id, done_completion done) {
        if (!session::is_session_id(id)) return done(session_errc::invalid_session_id);
        const auto stored = stored_id(id);
        command({"DEL", key("q:", stored), key("qm:", stored)}, [done = std::move(done)](std::error_code ec,
                                                                                          redisReply* reply) {
            if (ec) return done(ec);
            if ((ec = error_of(reply))) return done(ec);
            done(reply->type == REDIS_REPLY_INTEGER ? std::error_code{} : session_errc::bad_reply);
        });
    }

private:
    /// What a reply is for. load and touch, the hot operations, keep their
    /// completion here (no closure to allocate); everything else goes through
    /// a reply_handler.
    enum class reply_route : unsigned char { generic, load, touch };

    struct pending_command {
        reply_route route = reply_route::generic;
        std::array<char, session_id_size> id{};  // load, touch
        completion<session_record> loaded;       // load
        done_completion touched;                 // touch
        reply_handler generic;                   // generic
    };

    static std::string ms(std::chrono::milliseconds d) { return std::to_string(std::max<long long>(1, d.count())); }
    /// A queue duration for Redis: PEXPIRE refuses times past the year
    /// 292,278,994 (now + the argument overflowing), so longer ones are
    /// capped at about 31,000 years, which no queue outlives anyway.
    static std::string queue_ms(std::chrono::milliseconds d) {
        return std::to_string(std::clamp<long long>(d.count(), 1, 1'000'000'000'000'000LL));
    }

    static std::error_code check_queue_call(std::string_view id, const event_queue_limits& limits) noexcept {
        if (!session::is_session_id(id)) return session_errc::invalid_session_id;
        return session::validate_queue_limits(limits);
    }

    /// The reply of park_script or append_script (see session_scripts.hpp).
    static std::error_code queue_status_of(const redisReply* reply, bool may_be_absent, queue_status& status) {
        if (auto ec = error_of(reply)) return ec;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 || reply->element[0]->type != REDIS_REPLY_INTEGER)
            return session_errc::bad_reply;
        const auto* e = reply->element;
        switch (e[0]->integer) {
        case 0:
            if (reply->elements != 2 || e[1]->type != REDIS_REPLY_STRING || e[1]->len == 0)
                return session_errc::bad_reply;
            status.queued = false;
            status.holder.assign(e[1]->str, e[1]->len);
            return {};
        case 1:
            if (reply->elements != 2 || e[1]->type != REDIS_REPLY_INTEGER || e[1]->integer < 0)
                return session_errc::bad_reply;
            status.queued = true;
            status.evicted = static_cast<std::size_t>(e[1]->integer);
            return {};
        case 2:
            if (!may_be_absent || reply->elements != 1) return session_errc::bad_reply;
            return session_errc::not_found;
        default: return session_errc::bad_reply;  // 3: the meta hash is not one this store wrote
        }
    }

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
        command({"TYPE", key("s:", stored_id(id))}, [done = std::move(done)](std::error_code ec, redisReply* reply) {
            if (ec) return done(ec, {});
            if ((ec = error_of(reply))) return done(ec, {});
            if (reply->type != REDIS_REPLY_STATUS) return done(session_errc::bad_reply, {});
            done(text_of(reply) == "none" ? session_errc::not_found : session_errc::bad_reply, {});
        });
    }

    /// An idle-expired session found by a lookup: keep its record only for
    /// tombstone_retention and drop it from its account's index.
    void forget_expired(const std::string& id, const std::string& account) {
        const auto stored = stored_id(id);
        command({"PEXPIRE", key("s:", stored), ms(options_.tombstone_retention), "LT"}, [](std::error_code, redisReply*) {});
        command({"SREM", key("acct:", account), stored}, [](std::error_code, redisReply*) {});
    }

    /// Runs a script of session_scripts.hpp by its SHA-1 (EVALSHA); when
    /// Redis no longer has it (NOSCRIPT), again with its text (EVAL, which
    /// also caches it). Script calls are rare next to load and touch: the
    /// arguments are kept formatted, once, for that retry.
    void eval(script_id script, std::initializer_list<std::string> keys, std::initializer_list<std::string> args,
              reply_handler handler) {
        eval(script, keys, args, {}, std::move(handler));
    }

    /// The same with more arguments after `args` (park's batch of events).
    void eval(script_id script, std::initializer_list<std::string> keys, std::initializer_list<std::string> args,
              const std::vector<std::string>& more_args, reply_handler handler) {
        std::size_t room = resp_writer::arg_room(20);
        for (const auto& k : keys) room += resp_writer::arg_room(k.size());
        for (const auto& a : args) room += resp_writer::arg_room(a.size());
        for (const auto& a : more_args) room += resp_writer::arg_room(a.size());
        std::string arguments(room, '\0');
        resp_writer out(arguments.data());
        out.number(static_cast<long long>(keys.size()));
        for (const auto& k : keys) out.arg(k);
        for (const auto& a : args) out.arg(a);
        for (const auto& a : more_args) out.arg(a);
        arguments.resize(static_cast<std::size_t>(out.position() - arguments.data()));
        send_script(script, 3 + keys.size() + args.size() + more_args.size(), std::move(arguments), true,
                    std::move(handler));
    }

    /// `arguments`: numkeys, the keys and the arguments, formatted; `count`:
    /// the number of RESP arguments of the whole command.
    void send_script(script_id script, std::size_t count, std::string arguments, bool by_sha, reply_handler handler) {
        const auto index = static_cast<std::size_t>(script);
        const std::string_view name =
            by_sha ? std::string_view(script_shas_[index]) : std::string_view(all_scripts[index]);
        auto out = link_.begin_command(resp_writer::header_room + resp_writer::arg_room(7) +
                                       resp_writer::arg_room(name.size()) + arguments.size());
        out.array(count);
        out.arg(by_sha ? "EVALSHA" : "EVAL");
        out.arg(name);
        out.raw(arguments);
        link_.end_command(out);
        if (!by_sha) return send_generic(std::move(handler));
        send_generic([self = shared_from_this(), script, count, arguments = std::move(arguments),
                      handler = std::move(handler)](std::error_code ec, redisReply* reply) mutable {
            if (!ec && is_noscript(reply))
                return self->send_script(script, count, std::move(arguments), false, std::move(handler));
            handler(ec, reply);
        });
    }

    void command(std::initializer_list<std::string_view> args, reply_handler handler) {
        pending_command cmd;
        cmd.generic = std::move(handler);
        link_.send_args(args, std::move(cmd), options_.command_timeout);
    }

    void send_generic(reply_handler handler) {
        pending_command cmd;
        cmd.generic = std::move(handler);
        send(std::move(cmd));
    }

    /// Queues the command just formatted; `cmd` receives its reply.
    void send(pending_command cmd) { link_.send(std::move(cmd), options_.command_timeout); }

    /// Calls the completion of `cmd` with a reply, or with `ec` (then reply
    /// is null). For link_, which has taken `cmd` off its queue.
    void on_reply(pending_command& cmd, std::error_code ec, redisReply* reply) {
        switch (cmd.route) {
        case reply_route::load: return on_load_reply(cmd.id, std::move(cmd.loaded), ec, reply);
        case reply_route::touch: return on_touch_reply(cmd.id, std::move(cmd.touched), ec, reply);
        case reply_route::generic: return cmd.generic(ec, reply);
        }
    }

    void on_load_reply(const std::array<char, session_id_size>& id, completion<session_record> done, std::error_code ec,
                       redisReply* reply) {
        if (ec) return done(ec, {});
        if ((ec = error_of(reply))) return done(ec, {});
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return done(session_errc::bad_reply, {});
        session_record record;
        ec = decode_live(std::string(id.data(), id.size()), reply->element[0], reply->element[1], record);
        if (ec == session_errc::not_found) return classify_missing(record.session_id, std::move(done));
        if (ec == session_errc::expired && !record.account_id.empty())
            forget_expired(record.session_id, record.account_id);
        if (ec) return done(ec, {});
        done({}, std::move(record));
    }

    void on_touch_reply(const std::array<char, session_id_size>& id, done_completion done, std::error_code ec,
                        redisReply* reply) {
        if (ec) return done(ec);
        if ((ec = error_of(reply))) return done(ec);
        if (reply->type == REDIS_REPLY_STRING) return done({});
        if (reply->type != REDIS_REPLY_NIL) return done(session_errc::bad_reply);
        // No activity key: expired, revoked, unknown, or held only by its
        // reconnection token (then live: record activity).
        const std::string_view id_text(id.data(), id.size());
        load(id_text, [self = shared_from_this(), key = key("a:", stored_id(id_text)), done = std::move(done)](
                          std::error_code ec, session_record) mutable {
            if (ec) return done(ec);
            self->command({"SET", key, ms_text(session::now_ms()), "PX", ms(self->options_.idle_timeout)},
                          [done = std::move(done)](std::error_code ec, redisReply* reply) {
                              if (ec) return done(ec);
                              done(error_of(reply));
                          });
        });
    }

    // The link's other events: the store has nothing to do on them (a
    // lost connection fails the pending operations; later ones fail at
    // once until the link is back), and no reply comes unasked.
    void on_link_up() {}
    void on_link_down(bool) {}
    bool on_push(redisReply*) { return false; }

    friend class redis_link<redis_session_core, pending_command>;


    strand_type strand_;
    redis_session_store_options options_;
    redis_link<redis_session_core, pending_command> link_;
    std::string idle_timeout_text_;  // touch's PX argument, formatted once
    std::array<std::string, all_scripts.size()> script_shas_;  // of all_scripts, in order
};

/// A session id argument kept inline (the hot operations allocate no string
/// for it); anything longer than an id stays recognisably invalid.
class id_copy {
public:
    explicit id_copy(std::string_view id) noexcept : size_(static_cast<std::uint8_t>(std::min(id.size(), chars_.size()))) {
        std::memcpy(chars_.data(), id.data(), size_);
    }
    std::string_view view() const noexcept { return {chars_.data(), size_}; }

private:
    std::array<char, session_id_size + 1> chars_{};
    std::uint8_t size_;
};

}  // namespace detail

template <class Operation>
void redis_session_store::run(Operation&& op) {
    asio::post(core_->strand(), [core = core_, op = std::forward<Operation>(op)]() mutable { op(*core); });
}

GATEHOUSE_DECL redis_session_store::redis_session_store(const asio::any_io_executor& executor,
                                                        redis_session_store_options options)
    : timing_{options.idle_timeout, options.max_lifetime},
      core_(std::make_shared<detail::redis_session_core>(executor, validated(std::move(options)))) {
    asio::dispatch(core_->strand(), [core = core_] { core->start(); });
}

GATEHOUSE_DECL redis_session_store::~redis_session_store() { close(); }

GATEHOUSE_DECL void redis_session_store::close() {
    asio::dispatch(core_->strand(), [core = core_] { core->close(); });
}

GATEHOUSE_DECL bool redis_session_store::connected() const noexcept { return core_->connected(); }

GATEHOUSE_DECL void redis_session_store::create(session::session_record record, completion<session::session_record> done) {
    run([record = std::move(record), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.create(std::move(record), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::load(std::string_view session_id, completion<session::session_record> done) {
    run([id = detail::id_copy(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.load(id.view(), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::touch(std::string_view session_id, done_completion done) {
    run([id = detail::id_copy(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.touch(id.view(), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::update(session::session_record record, completion<session::session_record> done) {
    run([record = std::move(record), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.update(std::move(record), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::revoke(std::string_view session_id, done_completion done) {
    run([id = std::string(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.revoke(std::move(id), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::revoke_account(std::string_view account_id, completion<std::size_t> done) {
    run([account = std::string(account_id), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.revoke_account(std::move(account), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::list_account(std::string_view account_id,
                                                      completion<std::vector<session::session_record>> done) {
    run([account = std::string(account_id), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.list_account(std::move(account), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::issue_reconnect_token(std::string_view session_id,
                                                               std::chrono::milliseconds window,
                                                               completion<session::reconnect_token> done) {
    run([id = std::string(session_id), window, done = std::move(done)](detail::redis_session_core& c) mutable {
        c.issue_reconnect_token(std::move(id), window, std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::consume_reconnect_token(std::string_view token,
                                                                 completion<session::session_record> done) {
    run([token = std::string(token), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.consume_reconnect_token(std::move(token), std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::park(std::string_view session_id, std::string_view node,
                                              std::vector<std::string> events, const session::event_queue_limits& limits,
                                              completion<session::queue_status> done) {
    run([id = detail::id_copy(session_id), node = std::string(node), events = std::move(events), limits,
         done = std::move(done)](detail::redis_session_core& c) mutable {
        c.park(id.view(), node, std::move(events), limits, std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::append(std::string_view session_id, std::string_view event,
                                                const session::event_queue_limits& limits,
                                                completion<session::queue_status> done) {
    run([id = detail::id_copy(session_id), event = std::string(event), limits,
         done = std::move(done)](detail::redis_session_core& c) mutable {
        c.append(id.view(), event, limits, std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::take(std::string_view session_id, std::string_view node,
                                              const session::event_queue_limits& limits,
                                              completion<session::taken_events> done) {
    run([id = detail::id_copy(session_id), node = std::string(node), limits,
         done = std::move(done)](detail::redis_session_core& c) mutable {
        c.take(id.view(), node, limits, std::move(done));
    });
}

GATEHOUSE_DECL void redis_session_store::discard(std::string_view session_id, done_completion done) {
    run([id = detail::id_copy(session_id), done = std::move(done)](detail::redis_session_core& c) mutable {
        c.discard(id.view(), std::move(done));
    });
}

GATEHOUSE_DECL redis_session_store_options redis_session_store::validated(redis_session_store_options o) {
    if (const char* problem = detail::connection_options_problem(o))
        throw std::invalid_argument(std::string("redis_session_store: ") + problem);
    if (o.key_prefix.empty()) throw std::invalid_argument("redis_session_store: key_prefix is empty");
    if (o.idle_timeout.count() <= 0 || o.max_lifetime.count() <= 0 || o.tombstone_retention.count() <= 0 ||
        o.max_reconnect_window.count() <= 0)
        throw std::invalid_argument("redis_session_store: session durations must be positive");
    return o;
}

}  // namespace gatehouse::adapters::redis
