// The gateway's built-in WebSocket transport: websocketpp 0.8 on standalone
// Asio, ws:// and wss://. This is the only gatehouse file that includes
// websocketpp; it is compiled in exactly one C++17 translation unit of a
// program (see gatehouse/server/gateway.hpp, "COMPILING THE WEBSOCKET
// TRANSPORT"), because g++ rejects websocketpp's headers in C++20 mode.
//
// Settings follow the measurements in DESIGN.md: frame logging compiled out
// (access and error channels cleared), TCP_NODELAY set in the tcp post-init
// handler (the socket-init handler runs before accept and throws on a server
// socket), no strands or locks when one I/O thread runs, 2 KiB read buffer.
//
// Hostile peers before the upgrade (tests/server/test_hostile_upgrade.cpp):
// - one deadline from accept to the 101 (handshake_timeout) covers the TLS
//   handshake, a peer that sends nothing, and a request sent too slowly;
// - sockets still upgrading are capped at max_connections; beyond, a new
//   socket is closed at accept;
// - websocketpp's HTTP parser bounds the request head at 16000 bytes
//   (http::max_header_size, a compile-time constant): beyond, 431 and close;
//   a body (Content-Length) beyond max_http_body_size: 413; malformed: 400;
// - only RFC 6455 (Sec-WebSocket-Version 13); other versions: 426.
// After the upgrade websocketpp enforces RFC 6455 framing and answers a
// violation with a close frame and drops the socket: 1002 protocol error
// (unmasked frame, reserved bits or opcodes, bad continuation, fragmented or
// oversized control frame, bad close code), 1007 (invalid UTF-8 in a text
// message or close reason), 1009 (message beyond max_message_size, checked
// from the length field before anything is buffered), 1011 for a length not
// encoded minimally (websocketpp's mapping; RFC 6455 only forbids sending
// one). Tested in tests/server/test_hostile_frames.cpp.
// Control frames: each ping is answered with a pong that counts in the
// send budget (gateway_options::max_send_queue_bytes, with the data frames
// queued) at its payload plus 256 bytes until it is written; a ping whose
// pong would not fit closes the connection with 4005 (slow consumer, as for
// data) instead of being answered. A close frame gets one acknowledgement
// (later ones are ignored) and the socket is dropped once it is written or
// after handshake_timeout. Tested in tests/server/test_hostile_control.cpp.
//
// Plain HTTP requests (no upgrade) reach the http handler: GET metrics_path
// (Prometheus text, only for loopback or allow-listed peers, else 404 like
// any unknown path), GET health_path (200/503, JSON), 405 for other methods
// on those two; elsewhere 426 on exactly the WebSocket path (query aside),
// 404 otherwise (with or without an Upgrade), both counted as refused
// upgrades. Every answer but the 101 is a complete HTTP/1.1 response (reason
// phrase, Content-Length, a body for refusals, Connection: close) and the
// connection is closed after it: one request per connection, so of two
// pipelined requests only the first is answered (complete_response below).
// Tested in tests/server/test_http_endpoints.cpp.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>
#include <gatehouse/server/gateway.hpp>

#if !defined(ASIO_STANDALONE)
#define ASIO_STANDALONE 1
#endif

#include <websocketpp/config/asio.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>
#include <asio/steady_timer.hpp>

#include <fcntl.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gatehouse::server::detail {

/// Every websocketpp connection carries its gatehouse wrapper (websocketpp's
/// documented extension point: config::connection_base).
struct websocket_connection_base {
    websocket_connection_base() = default;
    websocket_connection_base(const websocket_connection_base&) = delete;
    websocket_connection_base& operator=(const websocket_connection_base&) = delete;
    ~websocket_connection_base() { leave_pending_upgrades(); }

    /// Counted among the transport's upgrades in progress until the
    /// connection opens or is destroyed (whichever comes first).
    void leave_pending_upgrades() noexcept {
        if (pending_upgrades) pending_upgrades->fetch_sub(1, std::memory_order_acq_rel);
        pending_upgrades.reset();
    }

    std::shared_ptr<transport_connection> gatehouse_connection;
    /// From accept to the open handler: the TLS handshake and the upgrade
    /// request together must finish within gateway_options::handshake_timeout.
    std::unique_ptr<asio::steady_timer> upgrade_deadline;
    std::shared_ptr<std::atomic<std::size_t>> pending_upgrades;
};

/// websocketpp's HTTP response, completed as it is written (websocketpp
/// writes it with raw(), which connection and processor call on the
/// configured response_type, so this one hides the base's). Every answer
/// but a 101 is a whole HTTP/1.1 response: a reason phrase (websocketpp's
/// own refusals, 400 and 431 from its request parser, come with none), a
/// body for refusals (the reason phrase when none was set), Content-Length,
/// and Connection: close, since websocketpp closes the connection after any
/// answer but a 101 (one request per connection: a pipelined second request
/// is never answered, RFC 9112 §9.6).
class complete_response : public websocketpp::http::parser::response {
public:
    std::string raw() const {
        namespace status = websocketpp::http::status_code;
        const status::value code = get_status_code();
        if (code < 200) return response::raw();  // 101: no Content-Length (RFC 9110 §8.6)
        response whole(*this);
        if (get_status_msg().empty()) whole.set_status(code, status::get_string(code));
        if (code >= 400 && get_body().empty()) {
            whole.set_body(whole.get_status_msg());
            whole.replace_header("Content-Type", "text/plain");
        }
        whole.replace_header("Content-Length", std::to_string(whole.get_body().size()));
        whole.replace_header("Connection", "close");
        return whole.raw();
    }
};

template <class Concurrency, bool MultiThreaded, class SocketType>
struct websocket_config : websocketpp::config::core {
    typedef websocket_config type;
    typedef websocketpp::config::core base;

    typedef Concurrency concurrency_type;
    typedef base::request_type request_type;
    typedef complete_response response_type;
    typedef base::message_type message_type;
    typedef base::con_msg_manager_type con_msg_manager_type;
    typedef base::endpoint_msg_manager_type endpoint_msg_manager_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::elevel> elog_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::alevel> alog_type;
    typedef base::rng_type rng_type;
    typedef websocket_connection_base connection_base;

    struct transport_config : public base::transport_config {
        typedef type::concurrency_type concurrency_type;
        typedef type::alog_type alog_type;
        typedef type::elog_type elog_type;
        typedef type::request_type request_type;
        typedef type::response_type response_type;
        typedef SocketType socket_type;
        static const bool enable_multithreading = MultiThreaded;
    };
    typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;

    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
    static const std::size_t connection_read_buffer_size = 2048;
    /// Overridden at run time with gateway_options::max_message_size.
    static const std::size_t max_message_size = 64 * 1024;
    /// Upgrade requests carry no body.
    static const std::size_t max_http_body_size = 4096;
};

using plain_single = websocket_config<websocketpp::concurrency::none, false,
                                      websocketpp::transport::asio::basic_socket::endpoint>;
using plain_multi = websocket_config<websocketpp::concurrency::basic, true,
                                     websocketpp::transport::asio::basic_socket::endpoint>;
using tls_single = websocket_config<websocketpp::concurrency::none, false,
                                    websocketpp::transport::asio::tls_socket::endpoint>;
using tls_multi = websocket_config<websocketpp::concurrency::basic, true,
                                   websocketpp::transport::asio::tls_socket::endpoint>;

template <class Config>
class websocket_connection final : public transport_connection {
public:
    using server_type = websocketpp::server<Config>;
    using connection_ptr = typename server_type::connection_ptr;
    using strand_ptr = std::shared_ptr<asio::io_context::strand>;

    websocket_connection(const connection_ptr& connection, asio::io_context& io, std::string remote)
        : connection_(connection), strand_(connection->get_strand()), io_(io), remote_(std::move(remote)) {}

    void send(frame_kind kind, protocol::bytes_view bytes) override {
        auto c = connection_.lock();
        if (!c) return;
        websocketpp::lib::error_code ec;
        ec = c->send(bytes.data(), bytes.size(),
                     kind == frame_kind::binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
        (void)ec;  // fails only once the connection is closing: nothing to do
    }

    bool send_within(frame_kind kind, protocol::bytes_view bytes, std::size_t limit) override {
        auto c = connection_.lock();
        if (!c) return true;  // closed: ignored, like send()
        if (c->get_buffered_amount() + control_bytes_.load(std::memory_order_relaxed) + bytes.size() > limit)
            return false;
        websocketpp::lib::error_code ec;
        ec = c->send(bytes.data(), bytes.size(),
                     kind == frame_kind::binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
        (void)ec;  // fails only once the connection is closing: nothing to do
        return true;
    }

    void close(std::uint16_t code, std::string_view reason) override {
        auto c = connection_.lock();
        if (!c) return;
        websocketpp::lib::error_code ec;
        c->close(static_cast<websocketpp::close::status::value>(code), std::string(reason.substr(0, 123)), ec);
    }

    void ping(std::uint32_t pong_timeout_ms) override {
        auto c = connection_.lock();
        if (!c) return;
        // websocketpp cancels a ping's pong deadline when the next ping goes
        // out: while one is unanswered, send no other, or a peer that went
        // silent would never be dropped when pong_timeout >= ping_interval.
        if (awaiting_pong_) return;
        awaiting_pong_ = true;
        websocketpp::lib::error_code ec;
        c->set_pong_timeout(static_cast<long>(pong_timeout_ms));
        c->ping(std::string(), ec);
    }

    /// A pong arrived (the connection's executor, like ping()).
    void pong_received() noexcept { awaiting_pong_ = false; }

    /// What a queued control reply costs beyond its payload (the message
    /// object, its header and its queue entries): an empty pong is not free.
    static constexpr std::size_t queued_frame_overhead = 256;

    /// The ping handler (the connection's executor): answers `payload` with a
    /// pong (RFC 6455 §5.5.3) when the send queue, counting the control
    /// replies still queued or being written, stays within `limit`; false
    /// when it would not (nothing is queued then). `self` is this wrapper.
    bool answer_ping(const connection_ptr& c, const std::string& payload, std::size_t limit,
                     const std::shared_ptr<websocket_connection>& self) {
        const std::size_t cost = payload.size() + queued_frame_overhead;
        if (c->get_buffered_amount() + control_bytes_.load(std::memory_order_relaxed) + cost > limit) return false;
        // websocketpp's own pong cannot be followed to the socket: this one
        // hands its overhead back when websocketpp releases it, written.
        typename message_type::ptr pong(
            new message_type(typename message_type::con_msg_man_ptr(), websocketpp::frame::opcode::PONG, payload.size()),
            control_release{self});
        control_bytes_.fetch_add(queued_frame_overhead, std::memory_order_relaxed);
        const websocketpp::frame::basic_header head(websocketpp::frame::opcode::PONG, payload.size(), true, false);
        pong->set_header(websocketpp::frame::prepare_header(head, websocketpp::frame::extended_header(payload.size())));
        pong->set_payload(payload);
        pong->set_prepared(true);
        websocketpp::lib::error_code ec = c->send(pong);
        (void)ec;  // fails only once the connection is closing: nothing to answer
        return true;
    }
    /// The pong deadline expired; the connection is being dropped.
    void mark_heartbeat_failed() noexcept { heartbeat_failed_ = true; }
    bool heartbeat_failed() const noexcept override { return heartbeat_failed_; }
    /// This transport closed the connection on its own (pongs beyond the budget).
    void close_by_transport(std::uint16_t code, std::string_view reason) {
        if (own_close_code_ == 0) own_close_code_ = code;
        close(code, reason);
    }
    std::uint16_t transport_close_code() const noexcept override { return own_close_code_; }

    std::size_t buffered_amount() const override {
        auto c = connection_.lock();
        return c ? c->get_buffered_amount() + control_bytes_.load(std::memory_order_relaxed) : 0;
    }

    const std::string& remote_address() const override { return remote_; }

    void post(std::function<void()> fn) override {
        if (strand_)
            asio::post(*strand_, std::move(fn));
        else
            asio::post(io_, std::move(fn));
    }

    void post_after(std::uint32_t delay_ms, std::function<void()> fn) override {
        auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(delay_ms));
        auto handler = [timer, fn = std::move(fn)](const std::error_code& ec) {
            if (!ec) fn();
        };
        if (strand_)
            timer->async_wait(asio::bind_executor(*strand_, std::move(handler)));
        else
            timer->async_wait(std::move(handler));
    }

private:
    using message_type = typename Config::message_type;

    /// Deleter of the pongs answer_ping() queues.
    struct control_release {
        std::shared_ptr<websocket_connection> owner;
        void operator()(message_type* message) const noexcept {
            owner->control_bytes_.fetch_sub(queued_frame_overhead, std::memory_order_relaxed);
            delete message;
        }
    };

    std::weak_ptr<typename connection_ptr::element_type> connection_;
    const strand_ptr strand_;
    asio::io_context& io_;
    const std::string remote_;
    bool awaiting_pong_ = false;  ///< a ping went out and no pong came yet
    bool heartbeat_failed_ = false;  ///< dropped for a missing pong
    std::uint16_t own_close_code_ = 0;  ///< see transport_close_code()
    /// Overhead of the pongs queued or being written (released by
    /// control_release, on whichever thread frees the message last).
    std::atomic<std::size_t> control_bytes_{0};
};

template <class Config>
class websocket_upgrade_request final : public upgrade_request {
public:
    using connection_ptr = typename websocketpp::server<Config>::connection_ptr;
    websocket_upgrade_request(const connection_ptr& c, const std::string& remote) : c_(c), remote_(remote) {}

    std::string_view header(std::string_view name) const override {
        return c_->get_request_header(std::string(name));
    }
    std::string_view resource() const override { return c_->get_resource(); }
    std::string_view remote_address() const override { return remote_; }
    const std::vector<std::string>& offered_subprotocols() const override { return c_->get_requested_subprotocols(); }

private:
    const connection_ptr& c_;
    const std::string& remote_;
};

template <class Config>
class websocket_transport final : public network_transport {
public:
    using server_type = websocketpp::server<Config>;
    using connection_ptr = typename server_type::connection_ptr;
    static constexpr bool is_tls =
        std::is_same<typename Config::transport_config::socket_type, websocketpp::transport::asio::tls_socket::endpoint>::value;

    explicit websocket_transport(std::shared_ptr<gateway_core> core) : core_(std::move(core)) {
        core_->wakes->set_deferral([this](std::uint32_t delay_ms, std::function<void()> fn) {
            auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(delay_ms));
            timer->async_wait([timer, fn = std::move(fn)](const std::error_code& ec) {
                if (!ec) fn();
            });
        });
    }

    ~websocket_transport() override {
        core_->wakes->set_deferral(nullptr);
        // Connections still open hold the gateway's state and it holds them:
        // break the cycles (the I/O threads have stopped by now).
        std::lock_guard<std::mutex> lock(live_mutex_);
        for (auto& weak : live_)
            if (auto c = weak.lock()) c->set_context(nullptr);
    }

    std::error_code listen() override {
        const auto& o = core_->options;
        try {
            server_.clear_access_channels(websocketpp::log::alevel::all);
            server_.clear_error_channels(websocketpp::log::elevel::all);
            server_.init_asio(&io_);
            server_.set_reuse_addr(true);
            server_.set_max_message_size(o.max_message_size);
            server_.set_open_handshake_timeout(static_cast<long>(o.handshake_timeout.count()));
            server_.set_close_handshake_timeout(static_cast<long>(o.handshake_timeout.count()));
            server_.set_user_agent("");
            install_handlers();
            if constexpr (is_tls) {
                if (auto ec = make_tls_context()) return ec;
            }
            std::error_code aec;
            const auto address = asio::ip::make_address(o.listen_address, aec);
            if (aec) {
                core_->log(log_level::error, "invalid listen_address: " + o.listen_address);
                return server_errc::listen_failed;
            }
            // gatehouse owns the listening socket and its accept loop: the
            // loop and stop() share one strand. websocketpp's own loop runs on
            // each new connection's strand, so closing its acceptor from
            // stop() raced with the next async_accept on another I/O thread.
            const asio::ip::tcp::endpoint endpoint(address, o.port);
            std::error_code lec;
            acceptor_.open(endpoint.protocol(), lec);
            if (!lec) close_on_exec(acceptor_.native_handle());
            if (!lec) acceptor_.set_option(asio::socket_base::reuse_address(true), lec);
            if (!lec) acceptor_.bind(endpoint, lec);
            if (!lec) acceptor_.listen(asio::socket_base::max_listen_connections, lec);
            if (lec) {
                core_->log(log_level::error, "listen failed: " + lec.message());
                std::error_code ignored;
                acceptor_.close(ignored);
                return server_errc::listen_failed;
            }
            asio::error_code local_ec;
            port_ = acceptor_.local_endpoint(local_ec).port();
            accept_next();
            listening_ = true;
            return {};
        } catch (const std::exception& e) {
            core_->log(log_level::error, std::string("listen failed: ") + e.what());
            return server_errc::listen_failed;
        }
    }

    std::uint16_t local_port() const override { return port_; }

    void run() override {
        if (!listening_) return;
        const std::size_t extra = core_->options.io_threads - 1;
        std::vector<std::thread> threads;
        threads.reserve(extra);
        for (std::size_t i = 0; i < extra; ++i) threads.emplace_back([this] { run_io(); });
        run_io();
        for (auto& t : threads) t.join();
    }

    void stop() override {
        if (stop_requested_.exchange(true)) return;
        core_->stopping.store(true, std::memory_order_release);
        asio::post(accept_strand_, [this] {
            std::error_code ignored;
            acceptor_.close(ignored);
            accept_retry_.cancel();
            core_->close_all(1001, "server shutdown");
            shutdown_deadline_ = std::chrono::steady_clock::now() + core_->options.handshake_timeout;
            wait_for_drain();
        });
    }

private:
    /// One outstanding accept at a time, on accept_strand_. A connection is
    /// created first so the socket is accepted straight into it; start()
    /// then runs websocketpp's upgrade (and TLS handshake) on its own strand.
    void accept_next() {
        if (!acceptor_.is_open()) return;
        connection_ptr con;
        try {
            con = server_.get_connection();
        } catch (const std::exception& e) {
            core_->log(log_level::error, std::string("could not create a connection: ") + e.what());
        }
        if (!con) {
            retry_accept();
            return;
        }
        acceptor_.async_accept(
            con->get_raw_socket(), asio::bind_executor(accept_strand_, [this, con](const std::error_code& ec) {
                if (ec) {
                    con->terminate(websocketpp::lib::error_code());
                    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
                    // Out of descriptors or memory: wait instead of spinning;
                    // the listening socket keeps queueing meanwhile.
                    core_->log(log_level::warning, "accept failed: " + ec.message());
                    retry_accept();
                    return;
                }
                // Sockets still upgrading are bounded like open connections:
                // silent or slow peers cannot pile up descriptors and
                // buffers beyond max_connections, whatever their speed.
                if (pending_upgrades_->load(std::memory_order_acquire) >= core_->options.max_connections) {
                    core_->log(log_level::debug, "too many upgrades in progress; connection closed at accept");
                    std::error_code ignored;
                    con->get_raw_socket().close(ignored);
                    accept_next();
                    return;
                }
                pending_upgrades_->fetch_add(1, std::memory_order_acq_rel);
                con->pending_upgrades = pending_upgrades_;
                arm_upgrade_deadline(con);
                con->start();
                accept_next();
            }));
    }

    /// websocketpp's own open-handshake timer starts only once the TLS
    /// handshake is done (which has its own fixed 5 s limit,
    /// timeout_socket_post_init) and does not cover the TLS handshake. This
    /// deadline runs from accept: when it expires before the upgrade has
    /// completed, the socket is shut down, which fails whatever websocketpp
    /// is waiting for (TLS or HTTP read) through its usual error path. So a
    /// TLS handshake gets min(handshake_timeout, 5 s), the whole upgrade
    /// handshake_timeout.
    void arm_upgrade_deadline(const connection_ptr& con) {
        con->upgrade_deadline = std::make_unique<asio::steady_timer>(io_, core_->options.handshake_timeout);
        std::weak_ptr<typename connection_ptr::element_type> weak = con;
        auto expire = [weak, core = core_](const std::error_code& ec) {
            if (ec) return;
            auto c = weak.lock();
            if (!c || c->get_state() != websocketpp::session::state::connecting) return;
            core->count_upgrade(upgrade_result::handshake_timeout);
            std::error_code ignored;
            c->get_raw_socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        };
        if (auto strand = con->get_strand())
            con->upgrade_deadline->async_wait(asio::bind_executor(*strand, std::move(expire)));
        else
            con->upgrade_deadline->async_wait(std::move(expire));
    }

    static void end_upgrade(const connection_ptr& c) {
        if (c->upgrade_deadline) {
            c->upgrade_deadline->cancel();
            c->upgrade_deadline.reset();
        }
        c->leave_pending_upgrades();
    }

    void retry_accept() {
        accept_retry_.expires_after(std::chrono::milliseconds(100));
        accept_retry_.async_wait(asio::bind_executor(accept_strand_, [this](const std::error_code& ec) {
            if (!ec) accept_next();
        }));
    }

    void run_io() {
        for (;;) {
            try {
                io_.run();
                return;
            } catch (const std::exception& e) {
                // websocketpp may throw from a handler on a programming error;
                // keep serving the other connections.
                core_->log(log_level::error, std::string("I/O thread caught: ") + e.what());
            }
        }
    }

    void wait_for_drain() {
        if (core_->connections.load(std::memory_order_acquire) == 0 ||
            std::chrono::steady_clock::now() >= shutdown_deadline_) {
            io_.stop();
            return;
        }
        auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(10));
        timer->async_wait([this, timer](const std::error_code&) { wait_for_drain(); });
    }

    static void close_on_exec(int fd) {
        const int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }

    static std::string remote_of(const connection_ptr& c) {
        std::error_code ec;
        const auto endpoint = c->get_raw_socket().remote_endpoint(ec);
        if (ec) return {};
        auto address = endpoint.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped())
            address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
        return address.to_string();
    }

    static std::shared_ptr<transport_connection> wrapper_of(const connection_ptr& c) {
        return c->gatehouse_connection;
    }

    void install_handlers() {
        // Sockets must not leak into processes the host spawns: a child holding
        // the listening socket would keep accepting after stop().
        server_.set_tcp_post_init_handler([this](websocketpp::connection_hdl hdl) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            close_on_exec(c->get_raw_socket().native_handle());
            std::error_code option_ec;
            c->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), option_ec);
        });
        server_.set_validate_handler([this](websocketpp::connection_hdl hdl) { return validate(hdl); });
        server_.set_open_handler([this](websocketpp::connection_hdl hdl) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            end_upgrade(c);
            if (auto w = wrapper_of(c)) core_->on_open(w);
        });
        server_.set_message_handler([this](websocketpp::connection_hdl hdl, typename server_type::message_ptr msg) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            auto w = wrapper_of(c);
            if (!w) return;
            const auto& payload = msg->get_payload();
            const auto kind =
                msg->get_opcode() == websocketpp::frame::opcode::text ? frame_kind::text : frame_kind::binary;
            core_->on_message(w, kind, protocol::bytes_view(payload));
        });
        const auto gone = [this](websocketpp::connection_hdl hdl, bool opened) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            end_upgrade(c);
            auto w = wrapper_of(c);
            if (!w) return;
            std::uint16_t code = 1006;
            if (opened) {
                const auto remote = c->get_remote_close_code();
                if (remote != websocketpp::close::status::blank) code = static_cast<std::uint16_t>(remote);
            }
            core_->on_close(w, code);
            w->set_context(nullptr);
            c->gatehouse_connection.reset();
        };
        server_.set_close_handler([gone](websocketpp::connection_hdl hdl) { gone(hdl, true); });
        // No pong in time: drop the connection (no closing handshake with a
        // peer that does not answer).
        server_.set_pong_timeout_handler([this](websocketpp::connection_hdl hdl, std::string) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            core_->log(log_level::info, "no pong in time; dropping the connection");
            if (auto w = wrapper_of(c)) static_cast<websocket_connection<Config>&>(*w).mark_heartbeat_failed();
            c->terminate(websocketpp::error::make_error_code(websocketpp::error::general));
        });
        // Pongs count in the send budget (max_send_queue_bytes) like data
        // frames: a peer that pings and never reads would otherwise have
        // one queued per ping without bound. Beyond the budget: 4005, as
        // for data (the close frame is queued behind what the peer does not
        // read, so the close handshake timeout drops the socket).
        server_.set_ping_handler([this](websocketpp::connection_hdl hdl, std::string payload) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return false;
            auto w = std::static_pointer_cast<websocket_connection<Config>>(wrapper_of(c));
            if (!w) return true;  // websocketpp answers
            if (!w->answer_ping(c, payload, core_->options.max_send_queue_bytes, w)) {
                core_->log(log_level::warning, "send queue limit exceeded by pongs; closing slow consumer with 4005");
                w->close_by_transport(4005, "slow consumer");
            }
            return false;
        });
        server_.set_pong_handler([this](websocketpp::connection_hdl hdl, std::string) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            if (auto w = wrapper_of(c)) static_cast<websocket_connection<Config>&>(*w).pong_received();
        });
        server_.set_fail_handler([gone](websocketpp::connection_hdl hdl) { gone(hdl, false); });
        server_.set_http_handler([this](websocketpp::connection_hdl hdl) {
            websocketpp::lib::error_code ec;
            auto c = server_.get_con_from_hdl(hdl, ec);
            if (ec) return;
            answer_http(c);
        });
        if constexpr (is_tls) {
            server_.set_tls_init_handler([this](websocketpp::connection_hdl) { return tls_context_; });
        }
    }

    /// Plain HTTP on the listening port: metrics_path, health_path, and for
    /// anything else 426 (exactly the WebSocket path, query aside) or 404,
    /// counted as refused upgrades (bad_request, not_found).
    void answer_http(const connection_ptr& c) {
        const auto& o = core_->options;
        const std::string& resource = c->get_resource();
        const std::string_view path = std::string_view(resource).substr(0, resource.find('?'));
        const bool get = c->get_request().get_method() == "GET";
        const auto plain = [&](websocketpp::http::status_code::value status, const char* body) {
            c->set_status(status);
            c->set_body(body);
            c->append_header("Content-Type", "text/plain");
        };
        if (!o.metrics_path.empty() && path == o.metrics_path && core_->metrics_allowed(remote_of(c))) {
            if (!get) return method_not_allowed(c);
            std::string body;
            body.reserve(16 * 1024);
            if (!core_->render_metrics(body)) return plain(websocketpp::http::status_code::not_found, "Not found");
            c->set_status(websocketpp::http::status_code::ok);
            c->append_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            c->append_header("Cache-Control", "no-store");
            c->set_body(std::move(body));
            return;
        }
        if (!o.health_path.empty() && path == o.health_path) {
            if (!get) return method_not_allowed(c);
            const bool stopping = core_->stopping.load(std::memory_order_acquire);
            c->set_status(stopping ? websocketpp::http::status_code::service_unavailable
                                   : websocketpp::http::status_code::ok);
            c->append_header("Content-Type", "application/json");
            c->append_header("Cache-Control", "no-store");
            c->set_body(stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"running\"}");
            return;
        }
        // The WebSocket path exactly (query aside), as on_upgrade matches
        // it: /connectfoo is 404 with or without an Upgrade.
        const bool ours = path == o.path;
        core_->count_upgrade(ours ? upgrade_result::bad_request : upgrade_result::not_found);
        if (ours)
            plain(websocketpp::http::status_code::upgrade_required, "This endpoint only accepts WebSocket connections");
        else
            plain(websocketpp::http::status_code::not_found, "Not found");
    }

    static void method_not_allowed(const connection_ptr& c) {
        c->set_status(websocketpp::http::status_code::method_not_allowed);
        c->append_header("Allow", "GET");
        c->append_header("Content-Type", "text/plain");
        c->set_body("Method not allowed");
    }

    bool validate(websocketpp::connection_hdl hdl) {
        websocketpp::lib::error_code ec;
        auto c = server_.get_con_from_hdl(hdl, ec);
        if (ec) return false;
        // RFC 6455 only. websocketpp would also speak the hixie-76/hybi-00
        // draft (no masking, no close codes) and the hybi-07/08 drafts; the
        // answer names the one version served (RFC 6455 §4.4).
        if (c->get_request_header("Sec-WebSocket-Version") != "13") {
            c->set_status(websocketpp::http::status_code::upgrade_required);
            c->replace_header("Sec-WebSocket-Version", "13");
            c->set_body("Unsupported WebSocket version");
            c->append_header("Content-Type", "text/plain");
            core_->count_upgrade(upgrade_result::bad_request);
            return false;
        }
        const std::string remote = remote_of(c);
        upgrade_decision decision;
        {
            websocket_upgrade_request<Config> request(c, remote);
            decision = core_->on_upgrade(request);
        }
        // The credential has been read: the bearer token (a JWT is ~300
        // bytes with its map node) need not stay in memory for the
        // connection's lifetime. websocketpp only offers the request as
        // const; the object itself is a non-const member, and nothing reads
        // this header after the upgrade decision.
        const_cast<typename server_type::connection_type::request_type&>(c->get_request()).remove_header(
            "Authorization");
        if (decision.status != 101) {
            c->set_status(static_cast<websocketpp::http::status_code::value>(decision.status));
            c->set_body(decision.body);
            c->append_header("Content-Type", "text/plain");
            return false;
        }
        if (!decision.subprotocol.empty()) c->select_subprotocol(decision.subprotocol, ec);
        auto wrapper = std::make_shared<websocket_connection<Config>>(c, io_, remote);
        wrapper->set_context(std::move(decision.context));
        c->gatehouse_connection = wrapper;
        {
            std::lock_guard<std::mutex> lock(live_mutex_);
            if (live_.size() >= 1024 && live_.size() % 1024 == 0)
                live_.erase(std::remove_if(live_.begin(), live_.end(), [](const auto& w) { return w.expired(); }),
                            live_.end());
            live_.push_back(wrapper);
        }
        return true;
    }

    std::error_code make_tls_context() {
        const auto& o = core_->options;
        try {
            auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
            ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                             asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                             asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
            SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
            // Idle connections give their TLS buffers back (~34 KiB each).
            SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
            ctx->use_certificate_chain_file(o.tls_certificate_file);
            ctx->use_private_key_file(o.tls_private_key_file, asio::ssl::context::pem);
            tls_context_ = std::move(ctx);
            return {};
        } catch (const std::exception& e) {
            core_->log(log_level::error, std::string("TLS setup failed: ") + e.what());
            return server_errc::tls_setup_failed;
        }
    }

    std::shared_ptr<gateway_core> core_;
    asio::io_context io_;
    server_type server_;
    asio::ip::tcp::acceptor acceptor_{io_};
    asio::strand<asio::io_context::executor_type> accept_strand_{io_.get_executor()};
    asio::steady_timer accept_retry_{io_};
    std::shared_ptr<asio::ssl::context> tls_context_;
    std::uint16_t port_ = 0;
    bool listening_ = false;
    std::atomic<bool> stop_requested_{false};
    std::chrono::steady_clock::time_point shutdown_deadline_{};
    std::mutex live_mutex_;
    std::vector<std::weak_ptr<transport_connection>> live_;
    /// Shared with the connections, which may outlive the transport's members
    /// while io_ destroys the handlers that hold them.
    std::shared_ptr<std::atomic<std::size_t>> pending_upgrades_ = std::make_shared<std::atomic<std::size_t>>(0);
};

std::unique_ptr<network_transport> make_websocket_transport(std::shared_ptr<gateway_core> core) {
    const bool tls = !core->options.tls_certificate_file.empty();
    const bool multi = core->options.io_threads > 1;
    if (tls) {
        if (multi) return std::make_unique<websocket_transport<tls_multi>>(std::move(core));
        return std::make_unique<websocket_transport<tls_single>>(std::move(core));
    }
    if (multi) return std::make_unique<websocket_transport<plain_multi>>(std::move(core));
    return std::make_unique<websocket_transport<plain_single>>(std::move(core));
}

}  // namespace gatehouse::server::detail
