// Implementation of gatehouse/adapters/redis/redis_event_bus.hpp: the bus's
// core (heartbeat and directory, pub/sub, the stream reader and its loss
// accounting) over three bus_links, each a redis_link. The stream reader's
// member functions are defined in redis_bus_stream.ipp, included below.
#pragma once

#include <gatehouse/adapters/redis/redis_event_bus.hpp>

#include <gatehouse/adapters/redis/detail/bus_link.hpp>
#include <gatehouse/adapters/redis/detail/bus_scripts.hpp>
#include <gatehouse/adapters/redis/detail/script_sha1.hpp>
#include <gatehouse/cluster/detail/inbound.hpp>
#include <gatehouse/cluster/envelope.hpp>

#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
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

namespace detail {

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
            // Subscribe again only once the pending unsubscription is
            // confirmed (on_push): one request per channel in flight keeps
            // the confirmations simple to follow. (It began as a workaround
            // for hiredis 0.14's async API, which forgot a channel's callback
            // when an UNSUBSCRIBE answer came after a new SUBSCRIBE.)
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

    void load_scripts() { commands_->load_scripts({bus_route_script, bus_claim_script, bus_release_script}); }

    /// A script cache flushed under us (SCRIPT FLUSH) answers NOSCRIPT: the
    /// operation fails with backend_error and the scripts are loaded again.
    static std::error_code script_error(const std::weak_ptr<redis_bus_core>& weak, const redisReply* reply) {
        const auto ec = bus_error_of(reply);
        if (ec && is_noscript(reply))
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

    void on_reader_up();

    void on_start_position(const redisReply* reply);

    void start_from_last_entry();

    void on_reader_down(bool stuck);

    void read_next();

    /// Entries a read may return when the reader was behind far enough to
    /// have been trimmed past: after MAXLEN ~ n, a stream holds n entries or
    /// more, all of them after the reader's position if it was passed.
    std::size_t behind_threshold() const noexcept { return std::min(options_.read_batch, options_.stream_max_length); }

    void on_entries(redisReply* reply);

    void read_checked();

    /// The reader's accounting: stream_read_ is how many entries of the
    /// stream's present incarnation lie at or before last_id_ (read, or
    /// already counted lost). Redis counts every entry ever added
    /// (entries-added); once the reader has read to the end, the difference
    /// is what was trimmed before it could read it.
    void on_checked(const redisReply* reply);

    void on_entry(const redisReply* entry);

    /// The reply to the PEXPIRE that keeps the stream alive: 0 means it is
    /// gone. While the reader waits in XREAD on a key that vanished it would
    /// wait unaware: its next read is a checked one.
    bus_link::reply_handler on_stream_refreshed();

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

}  // namespace gatehouse::adapters::redis

#include <gatehouse/adapters/redis/impl/redis_bus_stream.ipp>

namespace gatehouse::adapters::redis {

template <class Operation>
void redis_event_bus::run(Operation&& op) {
    asio::post(core_->strand(), [core = core_, op = std::forward<Operation>(op)]() mutable { op(*core); });
}

GATEHOUSE_DECL redis_event_bus::redis_event_bus(const asio::any_io_executor& executor, redis_event_bus_options options)
    : core_(std::make_shared<detail::redis_bus_core>(executor, validated(std::move(options)))),
      message_ids_(core_->message_ids_) {
    asio::dispatch(core_->strand(), [core = core_] { core->start(); });
}

GATEHOUSE_DECL redis_event_bus::~redis_event_bus() { close(); }

GATEHOUSE_DECL std::string_view redis_event_bus::node_id() const noexcept { return core_->node_id(); }

GATEHOUSE_DECL void redis_event_bus::subscribe(message_handler handler, done_completion done) {
    run([handler = std::move(handler), done = std::move(done)](detail::redis_bus_core& c) mutable {
        c.subscribe(std::move(handler), std::move(done));
    });
}

GATEHOUSE_DECL void redis_event_bus::publish(cluster::message_kind kind, std::string_view target,
                                             std::string_view payload, publish_completion done) {
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

GATEHOUSE_DECL void redis_event_bus::declare_interest(cluster::interest_kind kind, std::string_view name,
                                                      done_completion done) {
    if (!valid_interest(kind, name)) return reject(std::move(done));
    run([kind, name = std::string(name), done = std::move(done)](detail::redis_bus_core& c) mutable {
        c.declare(kind, std::move(name), std::move(done));
    });
}

GATEHOUSE_DECL void redis_event_bus::withdraw_interest(cluster::interest_kind kind, std::string_view name,
                                                       done_completion done) {
    if (!valid_interest(kind, name)) return reject(std::move(done));
    run([kind, name = std::string(name), done = std::move(done)](detail::redis_bus_core& c) mutable {
        c.withdraw(kind, std::move(name), std::move(done));
    });
}

GATEHOUSE_DECL void redis_event_bus::node_alive(std::string_view node, alive_completion done) {
    if (!cluster::valid_node_id(node)) {
        return run([done = std::move(done)](detail::redis_bus_core& c) mutable {
            if (done) done(c.closed() ? cluster::cluster_errc::bus_closed : cluster::cluster_errc::invalid_node_id, false);
        });
    }
    run([node = std::string(node), done = std::move(done)](detail::redis_bus_core& c) mutable {
        c.node_alive(std::move(node), std::move(done));
    });
}

GATEHOUSE_DECL cluster::event_bus_stats redis_event_bus::stats() const { return core_->stats().snapshot(); }

GATEHOUSE_DECL void redis_event_bus::close() {
    asio::dispatch(core_->strand(), [core = core_] { core->close(); });
}

GATEHOUSE_DECL void redis_event_bus::reject(done_completion done) {
    run([done = std::move(done)](detail::redis_bus_core& c) mutable {
        if (done) done(c.closed() ? cluster::cluster_errc::bus_closed : cluster::cluster_errc::invalid_target);
    });
}

GATEHOUSE_DECL bool redis_event_bus::valid_interest(cluster::interest_kind kind, std::string_view name) {
    const auto k = static_cast<std::uint8_t>(kind);
    return k >= 1 && k <= 3 && !name.empty() && name.size() <= cluster::max_target_size;
}

GATEHOUSE_DECL redis_event_bus_options redis_event_bus::validated(redis_event_bus_options o) {
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

}  // namespace gatehouse::adapters::redis
