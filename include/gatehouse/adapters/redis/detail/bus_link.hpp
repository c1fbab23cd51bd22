// One hiredis asynchronous connection of the event bus (commands, pub/sub
// or the stream reader): connects, reconnects with backoff, times commands
// out, on the bus's strand.
#pragma once

#include <gatehouse/adapters/redis/detail/connection_options.hpp>
#include <gatehouse/adapters/redis/detail/hiredis_asio.hpp>
#include <gatehouse/cluster/error.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace gatehouse::adapters::redis::detail {

using cluster::cluster_errc;

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

    bus_link(const strand_type& strand, const connection_options& options, std::string name)
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
    connection_options options_;  // a copy: the link may outlive its owner
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

}  // namespace gatehouse::adapters::redis::detail
