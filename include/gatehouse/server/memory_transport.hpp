// An in-memory transport: drives a gateway's transport_side() without
// sockets, for unit tests of the dispatcher and of host handlers. Each
// connection runs on its own strand of the given io_context, like a real
// connection; the test side (memory_client) is thread-safe.
//
// Failure injection: a client can stop reading (the server's sends pile up
// in buffered_amount(), as with a slow consumer), stop answering pings (the
// next ping's pong_timeout_ms drops it: 1006, heartbeat_failed()), drop the
// connection abruptly (1006), or die between an accepted upgrade and on_open.
//
// Lifetime: the gateway must outlive the memory_transport, and the
// io_context must be stopped (or have run out of work) before either is
// destroyed.
#pragma once

#include <gatehouse/protocol/bytes.hpp>
#include <gatehouse/server/transport.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::server {

/// What a memory client sends with its upgrade request.
struct memory_upgrade {
    std::string resource = "/connect";
    /// Header name and value pairs (names compared case-insensitively).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string remote_address = "127.0.0.1";
    std::vector<std::string> subprotocols;
    /// Failure injection: the socket dies after an accepted upgrade, before
    /// the 101 is written (on_open never comes).
    bool fail_before_open = false;
};

struct memory_frame {
    frame_kind kind = frame_kind::binary;
    std::string bytes;
};

class memory_transport;

namespace detail {
class memory_connection;
}

/// The test side of one in-memory connection.
class memory_client {
public:
    /// 0 while the upgrade is pending, then the status (101 = accepted).
    int status() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return status_;
    }
    std::string body() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return body_;
    }
    std::string subprotocol() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return subprotocol_;
    }
    /// True once the connection is gone (either side closed, or dropped).
    bool closed() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return closed_;
    }
    /// Close code and reason the server sent; 0 when it sent none.
    std::uint16_t server_close_code() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return server_close_code_;
    }
    std::string server_close_reason() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return server_close_reason_;
    }
    /// Every message the client has read so far.
    std::vector<memory_frame> frames() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return frames_;
    }
    std::size_t frame_count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return frames_.size();
    }
    /// Pings the server sent.
    std::size_t pings() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return pings_;
    }
    /// Failure injection: stop (false) or resume (true) answering pings.
    void answer_pings(bool answer) {
        std::lock_guard<std::mutex> lock(mutex_);
        answer_pings_ = answer;
    }

    inline void send_binary(protocol::bytes_view bytes);
    inline void send_text(std::string_view text);
    /// Client-initiated close (the server's on_close gets `code`).
    inline void close(std::uint16_t code = 1000);
    /// The network fails: on_close(1006), no close frame.
    inline void drop();
    /// Stop (true) or resume (false) reading. While stopped, the server's
    /// messages count in its buffered_amount(); resuming reads them all.
    inline void stall_reading(bool stalled);

private:
    friend class memory_transport;
    friend class detail::memory_connection;

    std::weak_ptr<detail::memory_connection> connection_;
    mutable std::mutex mutex_;
    int status_ = 0;
    std::string body_;
    std::string subprotocol_;
    bool closed_ = false;
    std::uint16_t server_close_code_ = 0;
    std::string server_close_reason_;
    std::vector<memory_frame> frames_;
    bool stalled_ = false;
    std::size_t pings_ = 0;
    bool answer_pings_ = true;
    std::vector<memory_frame> unread_;
    std::size_t unread_bytes_ = 0;
};

namespace detail {

class memory_upgrade_request final : public upgrade_request {
public:
    explicit memory_upgrade_request(const memory_upgrade& u) : u_(u) {}
    std::string_view header(std::string_view name) const override {
        for (const auto& h : u_.headers)
            if (iequals(h.first, name)) return h.second;
        return {};
    }
    std::string_view resource() const override { return u_.resource; }
    std::string_view remote_address() const override { return u_.remote_address; }
    const std::vector<std::string>& offered_subprotocols() const override { return u_.subprotocols; }

private:
    static bool iequals(std::string_view a, std::string_view b) noexcept {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i) {
            char x = a[i], y = b[i];
            if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
            if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
            if (x != y) return false;
        }
        return true;
    }
    const memory_upgrade& u_;
};

class memory_connection final : public transport_connection, public std::enable_shared_from_this<memory_connection> {
public:
    memory_connection(asio::io_context& io, transport_events& events, std::shared_ptr<memory_client> client)
        : strand_(asio::make_strand(io)), events_(events), client_(std::move(client)) {}

    void send(frame_kind kind, protocol::bytes_view bytes) override {
        if (closed_ || close_sent_) return;
        std::lock_guard<std::mutex> lock(client_->mutex_);
        memory_frame frame{kind, std::string(bytes.as_chars())};
        if (client_->stalled_) {
            client_->unread_bytes_ += frame.bytes.size();
            client_->unread_.push_back(std::move(frame));
        } else {
            client_->frames_.push_back(std::move(frame));
        }
    }

    void close(std::uint16_t code, std::string_view reason) override {
        if (closed_ || close_sent_) return;
        close_sent_ = true;
        {
            std::lock_guard<std::mutex> lock(client_->mutex_);
            client_->server_close_code_ = code;
            client_->server_close_reason_ = std::string(reason.substr(0, 123));
        }
        // The peer answers the close frame: the handshake completes.
        post([self = shared_from_this(), code] { self->finish(code); });
    }

    void ping(std::uint32_t pong_timeout_ms) override {
        if (closed_ || close_sent_) return;
        bool answered = true;
        {
            std::lock_guard<std::mutex> lock(client_->mutex_);
            ++client_->pings_;
            answered = client_->answer_pings_;
        }
        if (!answered)
            post_after(pong_timeout_ms, [self = shared_from_this()] {
                if (self->closed_) return;
                self->heartbeat_failed_ = true;
                self->finish(1006);
            });
    }

    bool heartbeat_failed() const noexcept override { return heartbeat_failed_; }

    std::size_t buffered_amount() const override {
        std::lock_guard<std::mutex> lock(client_->mutex_);
        return client_->unread_bytes_;
    }

    const std::string& remote_address() const override { return remote_; }

    void post(std::function<void()> fn) override { asio::post(strand_, std::move(fn)); }

    void post_after(std::uint32_t delay_ms, std::function<void()> fn) override {
        auto timer = std::make_shared<asio::steady_timer>(strand_, std::chrono::milliseconds(delay_ms));
        timer->async_wait([timer, fn = std::move(fn)](const std::error_code& ec) {
            if (!ec) fn();
        });
    }

    /// On the strand: the connection is gone.
    void finish(std::uint16_t code) {
        if (closed_) return;
        closed_ = true;
        {
            std::lock_guard<std::mutex> lock(client_->mutex_);
            client_->closed_ = true;
        }
        auto self = shared_from_this();
        events_.on_close(self, code);
        set_context(nullptr);
    }

    void upgrade(memory_upgrade u) {
        post([self = shared_from_this(), u = std::move(u)] {
            memory_upgrade_request request(u);
            self->remote_ = u.remote_address;
            auto decision = self->events_.on_upgrade(request);
            {
                std::lock_guard<std::mutex> lock(self->client_->mutex_);
                self->client_->status_ = decision.status;
                self->client_->body_ = decision.body;
                self->client_->subprotocol_ = decision.subprotocol;
                if (decision.status != 101) self->client_->closed_ = true;
            }
            if (decision.status != 101) {
                self->closed_ = true;
                return;
            }
            self->set_context(std::move(decision.context));
            if (u.fail_before_open) {
                self->finish(1006);
                return;
            }
            self->events_.on_open(self);
        });
    }

    void deliver(frame_kind kind, std::string bytes) {
        post([self = shared_from_this(), kind, bytes = std::move(bytes)] {
            if (self->closed_ || self->close_sent_) return;
            self->events_.on_message(self, kind, protocol::bytes_view(bytes));
        });
    }

    void peer_close(std::uint16_t code) {
        post([self = shared_from_this(), code] { self->finish(code); });
    }

private:
    asio::strand<asio::io_context::executor_type> strand_;
    transport_events& events_;
    std::shared_ptr<memory_client> client_;
    std::string remote_;
    bool closed_ = false;      // strand only
    bool close_sent_ = false;  // strand only
    bool heartbeat_failed_ = false;  // strand only: dropped for a missing pong
};

}  // namespace detail

class memory_transport {
public:
    memory_transport(asio::io_context& io, transport_events& events) : io_(io), events_(events) {}
    memory_transport(const memory_transport&) = delete;
    memory_transport& operator=(const memory_transport&) = delete;

    /// Connections still open hold the gateway's state and it holds them:
    /// break those cycles (no callback runs; the io_context must be idle).
    ~memory_transport() {
        for (auto& weak : connections_)
            if (auto c = weak.lock()) c->set_context(nullptr);
    }

    /// Starts an upgrade; it completes on the io_context (poll `status()`).
    std::shared_ptr<memory_client> connect(memory_upgrade upgrade = {}) {
        auto client = std::make_shared<memory_client>();
        auto connection = std::make_shared<detail::memory_connection>(io_, events_, client);
        client->connection_ = connection;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            connections_.push_back(connection);
        }
        connection->upgrade(std::move(upgrade));
        return client;
    }

private:
    asio::io_context& io_;
    transport_events& events_;
    std::mutex mutex_;
    std::vector<std::weak_ptr<detail::memory_connection>> connections_;
};

inline void memory_client::send_binary(protocol::bytes_view bytes) {
    if (auto c = connection_.lock()) c->deliver(frame_kind::binary, std::string(bytes.as_chars()));
}
inline void memory_client::send_text(std::string_view text) {
    if (auto c = connection_.lock()) c->deliver(frame_kind::text, std::string(text));
}
inline void memory_client::close(std::uint16_t code) {
    if (auto c = connection_.lock()) c->peer_close(code);
}
inline void memory_client::drop() {
    if (auto c = connection_.lock()) c->peer_close(1006);
}
inline void memory_client::stall_reading(bool stalled) {
    std::lock_guard<std::mutex> lock(mutex_);
    stalled_ = stalled;
    if (!stalled) {
        for (auto& f : unread_) frames_.push_back(std::move(f));
        unread_.clear();
        unread_bytes_ = 0;
    }
}

}  // namespace gatehouse::server
