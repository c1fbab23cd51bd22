// One connection to Redis, shared by both adapters: connects (resolving host
// names asynchronously), authenticates and selects the database, reconnects
// with backoff after a loss, times commands out, writes commands in RESP
// (pipelined: the commands of one turn of the event loop leave in one
// write) and reads replies with hiredis's reader into an arena. Everything
// runs on the owner's strand.
//
// The link is a member of its owner (redis_session_core, bus_link), which
// is held by a shared_ptr: the link's handlers keep the owner alive, as the
// owner's own handlers do, and the owner hears of the link through four
// member functions, called on the strand:
//   void on_reply(Command&, std::error_code, redisReply*)  a command's reply,
//       or its failure (then the reply is null, the error one of
//       link_errors); a reply lives until on_reply returns
//   void on_link_up()            connected (commands sent now go first)
//   void on_link_down(bool stuck)  the connection was lost (stuck: a command
//       timed out); the link reconnects after the backoff
//   bool on_push(redisReply*)    a reply no command waits for (pub/sub);
//       false: the link is out of step and reconnects
// Redis answers in order: a reply is always the oldest command's, and a
// command without an answer after its timeout means a stuck connection,
// which is dropped and made again.
#pragma once

#include <gatehouse/adapters/redis/detail/connection_options.hpp>
#include <gatehouse/adapters/redis/detail/reply_arena.hpp>
#include <gatehouse/adapters/redis/detail/resp_writer.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace gatehouse::adapters::redis::detail {

/// The errors a link reports, each in its owner's error enum.
struct link_errors {
    std::error_code closed;       ///< the owner closed the link
    std::error_code unavailable;  ///< not connected, or the connection was lost
    std::error_code timeout;      ///< no answer within the command's timeout
    std::error_code bad_reply;    ///< what arrived for the command is not RESP
};

/// Backoff between reconnection attempts: doubles from reconnect_delay_min
/// up to reconnect_delay_max, back to the minimum once connected.
class reconnect_backoff {
public:
    explicit reconnect_backoff(const connection_options& o) noexcept
        : min_(o.reconnect_delay_min), max_(o.reconnect_delay_max), next_(min_) {}
    std::chrono::milliseconds next() noexcept {
        const auto delay = next_;
        next_ = std::min(next_ * 2, max_);
        return delay;
    }
    void reset() noexcept { next_ = min_; }

private:
    std::chrono::milliseconds min_, max_, next_;
};

/// Redis no longer has the script an EVALSHA names (SCRIPT FLUSH, a restart
/// without it): the caller loads it again (SCRIPT LOAD) or sends its text.
inline bool is_noscript(const redisReply* reply) noexcept {
    return reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
           std::string_view(reply->str, reply->len).substr(0, 8) == "NOSCRIPT";
}

template <class Owner, class Command>
class redis_link {
public:
    using strand_type = asio::strand<asio::any_io_executor>;
    using clock = std::chrono::steady_clock;

    /// `client_name`: sent with CLIENT SETNAME after every connect when not
    /// empty.
    redis_link(Owner& owner, const strand_type& strand, const connection_options& options, link_errors errors,
               std::string client_name = {})
        : owner_(owner),
          strand_(strand),
          options_(options),
          errors_(std::move(errors)),
          client_name_(std::move(client_name)),
          timeout_timer_(strand_),
          reconnect_timer_(strand_),
          socket_(strand_),
          resolver_(strand_),
          backoff_(options_),
          read_buffer_(new char[read_buffer_size]) {
        out_.reserve(64 * 1024);
        writing_.reserve(64 * 1024);
    }

    ~redis_link() {
        if (reader_ != nullptr) redisReaderFree(reader_);
    }

    redis_link(const redis_link&) = delete;
    redis_link& operator=(const redis_link&) = delete;

    bool up() const noexcept { return state_ == link_state::up; }
    bool closed() const noexcept { return closed_; }
    /// From any thread (health checks).
    bool connected() const noexcept { return connected_.load(std::memory_order_relaxed); }

    void start() { connect(); }

    /// Final: pending commands fail with errors.closed, no reconnection.
    void close() {
        if (closed_) return;
        closed_ = true;
        timeout_timer_.cancel();
        reconnect_timer_.cancel();
        fail_all(errors_.closed);
        drop();
    }

    /// Final, once the commands already sent have been answered (or have
    /// timed out); later commands fail with errors.closed.
    void close_after_pending() {
        if (closed_) return;
        closed_ = true;
        reconnect_timer_.cancel();
        if (state_ != link_state::up || pending_.empty()) return finish_close();
    }

    /// Drops the connection (if any; its commands fail with errors.timeout
    /// when `stuck`, else errors.unavailable) and connects again after the
    /// backoff.
    void reset(bool stuck) {
        if (closed_) return;
        const bool had = state_ != link_state::down;
        fail_all(stuck ? errors_.timeout : errors_.unavailable);
        drop();
        if (!had) return;  // between attempts: the next one is scheduled
        owner_.on_link_down(stuck);
        schedule_reconnect();
    }

    // --- writing commands ------------------------------------------------------

    /// Reserves `room` bytes after the commands not yet written, for a
    /// command to be formatted; end_command trims the rest. Then send().
    resp_writer begin_command(std::size_t room) {
        command_start_ = out_.size();
        out_.resize(command_start_ + room);
        return resp_writer(out_.data() + command_start_);
    }

    void end_command(const resp_writer& out) { out_.resize(static_cast<std::size_t>(out.position() - out_.data())); }

    /// Queues the command just formatted: `cmd` receives its reply, or fails
    /// at once (on_reply, inline) while the link is down or closed. While
    /// connecting, commands wait and are written once connected.
    void send(Command cmd, std::chrono::milliseconds timeout) {
        if (closed_ || state_ == link_state::down) {
            out_.resize(command_start_);
            return owner_.on_reply(cmd, closed_ ? errors_.closed : errors_.unavailable, nullptr);
        }
        queue(std::move(cmd), false, timeout);
    }

    /// Formats and queues a command of `args` (string-like).
    template <class Args>
    void send_args(const Args& args, Command cmd, std::chrono::milliseconds timeout) {
        format(args);
        send(std::move(cmd), timeout);
    }

    void send_args(std::initializer_list<std::string_view> args, Command cmd, std::chrono::milliseconds timeout) {
        format(args);
        send(std::move(cmd), timeout);
    }

    /// A command whose answers arrive as pushes (SUBSCRIBE, UNSUBSCRIBE):
    /// false, nothing sent, unless connected.
    template <class Args>
    bool send_unanswered(const Args& args) {
        if (closed_ || state_ != link_state::up) return false;
        format(args);
        schedule_flush();
        return true;
    }

    /// SCRIPT LOAD of each script, answers ignored: later EVALSHAs on this
    /// connection find them (Redis answers in order).
    void load_scripts(std::initializer_list<const char*> scripts) {
        for (const char* script : scripts) internal_command({"SCRIPT", "LOAD", script});
    }

private:
    enum class link_state : unsigned char { down, connecting, up };

    struct slot {
        clock::time_point deadline{};
        bool internal = false;  // the link's own command (AUTH, SELECT, ...): reply ignored
        Command cmd{};
    };

    static constexpr std::size_t read_buffer_size = 64 * 1024;
    /// hiredis's reader moves the unparsed rest of its buffer to the front
    /// after every 1 KiB parsed: fed a large read at once, it would copy
    /// tens of KiB per reply. Small slices keep that rest small.
    static constexpr std::size_t reader_slice = 1024;

    template <class Args>
    void format(const Args& args) {
        std::size_t room = resp_writer::header_room, count = 0;
        for (const auto& a : args) {
            room += resp_writer::arg_room(std::string_view(a).size());
            ++count;
        }
        auto out = begin_command(room);
        out.array(count);
        for (const auto& a : args) out.arg(std::string_view(a));
        end_command(out);
    }

    void internal_command(std::initializer_list<std::string_view> args) {
        if (closed_ || state_ == link_state::down) return;
        format(args);
        queue(Command{}, true, options_.command_timeout);
    }

    void queue(Command cmd, bool internal, std::chrono::milliseconds timeout) {
        slot s;
        s.deadline = clock::now() + timeout;
        s.internal = internal;
        s.cmd = std::move(cmd);
        const auto deadline = s.deadline;
        pending_.push_back(std::move(s));
        arm_timeout(deadline);
        schedule_flush();
    }

    std::shared_ptr<Owner> keep() { return owner_.shared_from_this(); }

    /// Completes every pending command with `why`, each in its own handler
    /// (never inside the caller, which may be inside another completion).
    void fail_all(std::error_code why) {
        while (!pending_.empty()) {
            auto s = pending_.pop_front();
            if (s.internal) continue;
            asio::post(strand_, [owner = keep(), cmd = std::move(s.cmd), why]() mutable {
                owner->on_reply(cmd, why, nullptr);
            });
        }
    }

    /// Closes the connection; handlers of the old one see a changed
    /// generation and do nothing. The pending commands are failed first.
    void drop() {
        ++generation_;
        state_ = link_state::down;
        connected_.store(false, std::memory_order_relaxed);
        std::error_code ignored;
        socket_.close(ignored);
        resolver_.cancel();
        out_.clear();
        command_start_ = 0;
        if (reader_ != nullptr) redisReaderFree(std::exchange(reader_, nullptr));
    }

    void finish_close() {
        timeout_timer_.cancel();
        fail_all(errors_.closed);
        drop();
    }

    void lose_connection() {
        if (state_ == link_state::down) return;
        fail_all(errors_.unavailable);
        drop();
        if (closed_) return;
        owner_.on_link_down(false);
        schedule_reconnect();
    }

    /// What arrived is not RESP: the oldest command's reply is bad, and the
    /// link, out of step, is dropped (the others fail as unavailable).
    void reply_not_resp() {
        if (!pending_.empty()) {
            auto s = pending_.pop_front();
            if (!s.internal)
                asio::post(strand_, [owner = keep(), cmd = std::move(s.cmd), why = errors_.bad_reply]() mutable {
                    owner->on_reply(cmd, why, nullptr);
                });
        }
        lose_connection();
    }

    // --- timeouts ----------------------------------------------------------------

    /// The timer runs to the oldest command's deadline; armed earlier when a
    /// command with a shorter timeout follows one with a longer (XREAD BLOCK).
    void arm_timeout(clock::time_point deadline) {
        if (timeout_armed_ && deadline >= timeout_at_) return;
        timeout_armed_ = true;
        timeout_at_ = deadline;
        const auto wait = ++timeout_wait_;
        timeout_timer_.expires_at(deadline);
        timeout_timer_.async_wait([this, owner = keep(), wait](const std::error_code& ec) {
            if (wait != timeout_wait_) return;  // re-armed since
            timeout_armed_ = false;
            if (ec) return;
            check_timeouts();
        });
    }

    void check_timeouts() {
        if (pending_.empty() || state_ == link_state::down) return;
        const auto deadline = pending_.front().deadline;
        if (deadline > clock::now()) return arm_timeout(deadline);
        fail_all(errors_.timeout);
        drop();
        if (closed_) return finish_close();
        owner_.on_link_down(true);
        schedule_reconnect();
    }

    // --- connecting ----------------------------------------------------------------

    void connect() {
        if (closed_ || state_ != link_state::down) return;
        replies_.reset();
        reader_ = replies_.create_reader();
        if (reader_ == nullptr) return schedule_reconnect();
        state_ = link_state::connecting;
        socket_ = asio::ip::tcp::socket(strand_);
        const auto generation = generation_;
        // Queued while connecting: these lead.
        if (!options_.password.empty()) internal_command({"AUTH", options_.password});
        if (options_.database != 0) internal_command({"SELECT", std::to_string(options_.database)});
        if (!client_name_.empty()) internal_command({"CLIENT", "SETNAME", client_name_});
        auto connected = [this, owner = keep(), generation](const std::error_code& ec, const auto&) {
            if (generation != generation_) return;
            if (ec) return lose_connection();
            on_connected();
        };
        std::error_code not_an_address;
        const auto address = asio::ip::make_address(options_.host, not_an_address);
        if (!not_an_address) {
            const std::array<asio::ip::tcp::endpoint, 1> endpoints{
                asio::ip::tcp::endpoint(address, static_cast<unsigned short>(options_.port))};
            return asio::async_connect(socket_, endpoints, std::move(connected));
        }
        resolver_.async_resolve(options_.host, std::to_string(options_.port),
                                [this, owner = keep(), generation, connected = std::move(connected)](
                                    const std::error_code& ec, asio::ip::tcp::resolver::results_type results) mutable {
                                    if (generation != generation_) return;
                                    if (ec) return lose_connection();
                                    asio::async_connect(socket_, results, std::move(connected));
                                });
    }

    void on_connected() {
        std::error_code ignored;
        socket_.set_option(asio::ip::tcp::no_delay(true), ignored);  // commands are batched already
        state_ = link_state::up;
        connected_.store(true, std::memory_order_relaxed);
        backoff_.reset();
        start_read();
        const auto generation = generation_;
        owner_.on_link_up();  // its commands leave with the setup commands
        if (generation == generation_) flush();
    }

    void schedule_reconnect() {
        if (closed_) return;
        reconnect_timer_.expires_after(backoff_.next());
        reconnect_timer_.async_wait([this, owner = keep()](const std::error_code& ec) {
            if (!ec) connect();
        });
    }

    // --- writing and reading ------------------------------------------------------

    /// Commands issued in the same turn of the event loop leave in one write:
    /// the flush runs after the current handler.
    void schedule_flush() {
        if (flush_scheduled_ || write_in_flight_ || state_ != link_state::up) return;
        flush_scheduled_ = true;
        asio::post(strand_, [this, owner = keep()] {
            flush_scheduled_ = false;
            flush();
        });
    }

    void flush() {
        if (write_in_flight_ || state_ != link_state::up || out_.empty()) return;
        writing_.swap(out_);  // both keep their capacity: no allocation once warm
        out_.clear();
        command_start_ = 0;
        write_in_flight_ = true;
        asio::async_write(socket_, asio::buffer(writing_),
                          [this, owner = keep(), generation = generation_](const std::error_code& ec, std::size_t) {
                              write_in_flight_ = false;
                              writing_.clear();
                              if (generation != generation_) return flush();  // written to an old link
                              if (ec) return lose_connection();
                              flush();
                          });
    }

    void start_read() {
        socket_.async_read_some(asio::buffer(read_buffer_.get(), read_buffer_size),
                                [this, owner = keep(), generation = generation_](const std::error_code& ec,
                                                                                 std::size_t size) {
                                    if (generation != generation_) return;
                                    if (ec) return lose_connection();
                                    on_read(generation, size);
                                });
    }

    void on_read(std::uint64_t generation, std::size_t size) {
        const char* data = read_buffer_.get();
        while (size > 0) {
            const auto slice = std::min(size, reader_slice);
            if (redisReaderFeed(reader_, data, slice) != REDIS_OK) return lose_connection();
            data += slice;
            size -= slice;
            for (;;) {
                void* parsed = nullptr;
                if (redisReaderGetReply(reader_, &parsed) != REDIS_OK) return reply_not_resp();
                if (parsed == nullptr) break;
                auto* reply = static_cast<redisReply*>(parsed);
                if (pending_.empty()) {
                    const bool taken = owner_.on_push(reply);
                    replies_.reset();
                    if (generation != generation_) return;
                    if (!taken) return lose_connection();  // a reply nobody asked for
                    continue;
                }
                // Redis answers in order: the reply is the oldest command's.
                auto s = pending_.pop_front();
                if (!s.internal) owner_.on_reply(s.cmd, {}, reply);
                replies_.reset();  // the reply, built in the arena, is done with
                if (generation != generation_) return;  // the owner dropped or closed the link
                if (closed_ && pending_.empty()) return finish_close();
            }
        }
        start_read();
    }

    Owner& owner_;
    strand_type strand_;
    connection_options options_;
    link_errors errors_;
    std::string client_name_;
    asio::steady_timer timeout_timer_;
    asio::steady_timer reconnect_timer_;
    asio::ip::tcp::socket socket_;
    asio::ip::tcp::resolver resolver_;
    reconnect_backoff backoff_;
    link_state state_ = link_state::down;
    std::uint64_t generation_ = 0;  // of the connection; handlers of an older one do nothing
    reply_arena replies_;           // where reader_ builds replies
    redisReader* reader_ = nullptr;
    std::unique_ptr<char[]> read_buffer_;
    command_ring<slot> pending_;  // sent or queued, oldest first
    std::string out_;             // commands formatted, not yet written
    std::string writing_;         // commands being written
    std::size_t command_start_ = 0;  // in out_, of the command being formatted
    bool write_in_flight_ = false;
    bool flush_scheduled_ = false;
    bool timeout_armed_ = false;
    clock::time_point timeout_at_{};
    std::uint64_t timeout_wait_ = 0;  // of the timer's current wait
    bool closed_ = false;
    std::atomic<bool> connected_{false};
};

}  // namespace gatehouse::adapters::redis::detail
