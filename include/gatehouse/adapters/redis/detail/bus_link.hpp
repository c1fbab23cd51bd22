// One connection of the event bus (commands, pub/sub or the stream reader)
// over the adapters' shared redis_link: it connects, reconnects with
// backoff, times commands out, and names itself (CLIENT SETNAME) on every
// connect. Used on the bus's strand only. Its owner learns about it through
// hooks, which the owner clears before it goes away.
#pragma once

#include <gatehouse/adapters/redis/detail/connection_options.hpp>
#include <gatehouse/adapters/redis/detail/redis_link.hpp>
#include <gatehouse/cluster/error.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/strand.hpp>

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstddef>
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
        : command_timeout_(options.command_timeout),
          link_(*this, strand, options,
                {cluster_errc::bus_closed, cluster_errc::bus_unavailable, cluster_errc::timeout,
                 cluster_errc::bad_reply},
                std::move(name)) {}

    void set_hooks(hooks h) { hooks_ = std::move(h); }
    bool up() const noexcept { return link_.up(); }
    bool closed() const noexcept { return link_.closed(); }

    void start() { link_.start(); }

    /// Final: pending commands fail with bus_closed, no reconnection.
    void close() {
        if (link_.closed()) return;
        hooks_ = {};
        link_.close();
    }

    /// Final, after the commands already sent have been answered (or have
    /// timed out).
    void close_after_pending() {
        if (link_.closed()) return;
        hooks_ = {};
        link_.close_after_pending();
    }

    /// Drops the connection (if any) and connects again after the backoff.
    void reset(bool stuck) { link_.reset(stuck); }

    /// Fails at once with bus_unavailable while not connected.
    void send(const std::string_view* args, std::size_t count, reply_handler handler,
              std::chrono::milliseconds timeout) {
        if (link_.closed()) return handler(cluster_errc::bus_closed, nullptr);
        if (!link_.up()) return handler(cluster_errc::bus_unavailable, nullptr);
        link_.send_args(arg_span{args, args + count}, std::move(handler), timeout);
    }

    void command(std::initializer_list<std::string_view> args, reply_handler handler) {
        send(args.begin(), args.size(), std::move(handler), command_timeout_);
    }

    /// SUBSCRIBE / UNSUBSCRIBE: the answers arrive through hooks.push.
    bool send_pubsub(const std::vector<std::string>& args) { return link_.send_unanswered(args); }

    /// SCRIPT LOAD of each (answers ignored): EVALSHAs sent after it on this
    /// connection find them.
    void load_scripts(std::initializer_list<const char*> scripts) { link_.load_scripts(scripts); }

private:
    friend class redis_link<bus_link, reply_handler>;

    struct arg_span {
        const std::string_view* first;
        const std::string_view* last;
        const std::string_view* begin() const noexcept { return first; }
        const std::string_view* end() const noexcept { return last; }
    };

    // redis_link's events.
    void on_reply(reply_handler& handler, std::error_code ec, redisReply* reply) { handler(ec, reply); }
    void on_link_up() {
        if (hooks_.up) hooks_.up();
    }
    void on_link_down(bool stuck) {
        if (hooks_.down) hooks_.down(stuck);
    }
    bool on_push(redisReply* reply) {
        if (!hooks_.push) return false;  // a reply nobody asked for
        hooks_.push(reply);
        return true;
    }

    std::chrono::milliseconds command_timeout_;
    hooks hooks_;
    redis_link<bus_link, reply_handler> link_;
};

}  // namespace gatehouse::adapters::redis::detail
