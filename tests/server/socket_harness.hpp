// Real sockets against the websocketpp transport, with a client that does
// exactly what a test tells it, byte by byte: hostile upgrades, malformed
// frames, and the soak's well-behaved sessions.
//
// - live_gateway: a gateway on an ephemeral loopback port with the standard
//   endpoints of harness.hpp (/echo ...) and the scripted validator, run on
//   its own thread.
// - client_socket: one TCP (optionally TLS) connection driven synchronously
//   with deadlines (async operations on a private io_context run for a
//   bounded time), so that a test can observe "the server closed within T".
// - ws_client: the RFC 6455 client side on top of it (upgrade, masked
//   frames, the server's frames, the manifest, calls); frames are built and
//   parsed with the load generator's lean codec (benchmarks/loadgen).
// - bystander: a session calling /echo in a loop on its own thread while a
//   test attacks the gateway; it must never miss a reply.
#pragma once

#include "../../benchmarks/loadgen/ws_frame.hpp"
#include "harness.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>

namespace gatehouse::test::sockets {

namespace lg = gatehouse::loadgen;
using ms = std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

/// A gateway listening on 127.0.0.1 (ephemeral port), with the standard
/// endpoints, the scripted validator and an in-memory store.
struct live_gateway {
    explicit live_gateway(s::gateway_options options)
        : validator(std::make_shared<scripted_validator>()),
          store(std::make_shared<session::memory_session_store>()) {
        options.port = 0;
        options.listen_address = "127.0.0.1";
        gw = std::make_unique<s::gateway>(std::move(options), validator, store);
        add_standard_endpoints(*gw, held);
        REQUIRE_FALSE(gw->listen());
        port = gw->local_port();
        REQUIRE(port != 0);
        thread = std::thread([this] { gw->run(); });
    }
    ~live_gateway() {
        gw->stop();
        thread.join();
    }
    live_gateway(const live_gateway&) = delete;
    live_gateway& operator=(const live_gateway&) = delete;

    /// Waits until stats().connections == n (upgrading or open).
    bool wait_for_connections(std::size_t n, ms timeout = ms(3000)) const {
        const auto deadline = clock_type::now() + timeout;
        while (gw->stats().connections != n) {
            if (clock_type::now() >= deadline) return false;
            std::this_thread::sleep_for(ms(5));
        }
        return true;
    }

    std::shared_ptr<scripted_validator> validator;
    std::shared_ptr<session::memory_session_store> store;
    std::shared_ptr<held_calls> held = std::make_shared<held_calls>();
    std::unique_ptr<s::gateway> gw;
    std::uint16_t port = 0;
    std::thread thread;
};

/// Gateway options for socket tests: the harness defaults (generous connect
/// rate, 1 ms manifest delay, no pings) and a high message rate.
inline s::gateway_options socket_options(std::size_t io_threads = 1) {
    auto o = default_options();
    o.io_threads = io_threads;
    o.messages_per_minute = 6000000;
    o.message_burst = 100000;
    o.account_messages_per_minute = o.messages_per_minute;
    o.account_message_burst = o.message_burst;
    return o;
}

/// One client connection, synchronous with deadlines.
class client_socket {
public:
    enum class read_status { data, closed, timeout };

    /// Connects to 127.0.0.1:port; with `tls`, also runs the TLS handshake.
    /// A nonzero `receive_buffer` sets SO_RCVBUF before the connection is
    /// made: the window offered in the SYN is small from the start. (Shrunk
    /// after connecting, the window the peer was already offered cannot be
    /// taken back: the kernel drops what overflows and the sender retries
    /// with backoff, for seconds, a stall of the test's own making.)
    explicit client_socket(std::uint16_t port, asio::ssl::context* tls = nullptr, int receive_buffer = 0)
        : socket_(io_) {
        std::error_code ec;
        const asio::ip::tcp::endpoint server(asio::ip::make_address("127.0.0.1"), port);
        if (receive_buffer > 0) {
            socket_.open(server.protocol(), ec);
            REQUIRE_MESSAGE(!ec, "socket: " << ec.message());
            socket_.set_option(asio::socket_base::receive_buffer_size(receive_buffer), ec);
            REQUIRE_MESSAGE(!ec, "SO_RCVBUF: " << ec.message());
        }
        socket_.connect(server, ec);
        REQUIRE_MESSAGE(!ec, "connect: " << ec.message());
        socket_.set_option(asio::ip::tcp::no_delay(true), ec);
        if (tls) {
            tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls);
            bool done = false;
            std::error_code hec;
            tls_->async_handshake(asio::ssl::stream_base::client, [&](const std::error_code& e) {
                hec = e;
                done = true;
            });
            run_for(done, ms(5000));
            REQUIRE_MESSAGE(done, "TLS handshake timed out");
            REQUIRE_MESSAGE(!hec, "TLS handshake: " << hec.message());
        }
    }
    client_socket(const client_socket&) = delete;
    client_socket& operator=(const client_socket&) = delete;

    /// Writes all of `bytes`; false when the peer is gone or it takes > 5 s.
    bool write(std::string_view bytes) {
        bool done = false;
        std::error_code ec;
        const auto handler = [&](const std::error_code& e, std::size_t) {
            ec = e;
            done = true;
        };
        if (tls_)
            asio::async_write(*tls_, asio::buffer(bytes.data(), bytes.size()), handler);
        else
            asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()), handler);
        run_for(done, ms(5000));
        return done && !ec;
    }

    /// Appends what arrives to `buffer` (one read).
    read_status read_some(ms timeout) {
        char chunk[16384];
        bool done = false;
        std::error_code ec;
        std::size_t n = 0;
        const auto handler = [&](const std::error_code& e, std::size_t got) {
            ec = e;
            n = got;
            done = true;
        };
        if (tls_)
            tls_->async_read_some(asio::buffer(chunk), handler);
        else
            socket_.async_read_some(asio::buffer(chunk), handler);
        run_for(done, timeout);
        if (!done || ec == asio::error::operation_aborted) return read_status::timeout;
        buffer.append(chunk, n);
        if (n > 0) return read_status::data;
        closed_ = true;
        (void)ec;  // eof, reset or TLS truncation: all mean the server is gone
        return read_status::closed;
    }

    /// Reads until `buffer` contains `needle`; false on close or timeout.
    bool read_until(std::string_view needle, ms timeout) {
        const auto deadline = clock_type::now() + timeout;
        while (buffer.find(needle) == std::string::npos) {
            const auto left = std::chrono::duration_cast<ms>(deadline - clock_type::now());
            if (left <= ms(0) || read_some(left) != read_status::data) return false;
        }
        return true;
    }

    /// Reads (and keeps) everything until the server closes the connection;
    /// returns how long that took, or nothing when it is still open after
    /// `timeout`.
    std::optional<ms> wait_closed(ms timeout) {
        const auto start = clock_type::now();
        const auto deadline = start + timeout;
        while (!closed_) {
            const auto left = std::chrono::duration_cast<ms>(deadline - clock_type::now());
            if (left <= ms(0) || read_some(left) == read_status::timeout) return std::nullopt;
        }
        return std::chrono::duration_cast<ms>(clock_type::now() - start);
    }

    bool closed() const { return closed_; }
    asio::ip::tcp::socket& raw() { return socket_; }

    std::string buffer;  ///< bytes received and not yet consumed

private:
    void run_for(bool& done, ms timeout) {
        io_.restart();
        io_.run_for(timeout);
        if (!done) {
            // Abandon the operation; its handler runs now with operation_aborted.
            std::error_code ignored;
            socket_.cancel(ignored);
            io_.restart();
            io_.run();
            // The handler has run: with operation_aborted, or with what it
            // read (or wrote) just before the cancel, which must not be lost.
        }
    }

    asio::io_context io_;
    asio::ip::tcp::socket socket_;
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
    bool closed_ = false;
};

/// A frame from the server.
struct server_frame {
    lg::ws_opcode opcode = lg::ws_opcode::continuation;
    bool fin = false;
    std::string payload;
    /// For close frames: the code (1005 when the payload has none).
    std::uint16_t close_code() const {
        if (payload.size() < 2) return 1005;
        return static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                          static_cast<std::uint8_t>(payload[1]));
    }
};

/// Raw client frame: first byte as given (FIN, RSV, opcode), the payload
/// length in the encoding asked for (minimal by default), masked or not.
struct frame_spec {
    frame_spec(std::uint8_t first = 0x82, bool mask = true, int form = 0,
               std::optional<std::uint64_t> declared = std::nullopt)
        : first_byte(first), masked(mask), length_form(form), declared_length(declared) {}

    std::uint8_t first_byte = 0x82;  ///< FIN + binary
    bool masked = true;
    /// 0: minimal; 126 or 127 force the 16- or 64-bit form.
    int length_form = 0;
    /// Replaces the length field's value (the payload sent stays `payload`).
    std::optional<std::uint64_t> declared_length;
};

inline std::string client_frame(std::string_view payload, const frame_spec& spec = {}) {
    std::string out;
    out.push_back(static_cast<char>(spec.first_byte));
    const std::uint64_t n = spec.declared_length.value_or(payload.size());
    const std::uint8_t mask_bit = spec.masked ? 0x80 : 0x00;
    int form = spec.length_form;
    if (form == 0) form = n < 126 ? 0 : (n <= 0xffff ? 126 : 127);
    if (form == 0) {
        out.push_back(static_cast<char>(mask_bit | n));
    } else if (form == 126) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>((n >> 8) & 0xff));
        out.push_back(static_cast<char>(n & 0xff));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (spec.masked) out.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        out.push_back(spec.masked ? static_cast<char>(payload[i] ^ static_cast<char>(key[i & 3])) : payload[i]);
    return out;
}

inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
    std::string out;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xff));
    out.append(reason);
    return out;
}

/// An upgrade request; `extra` is inserted verbatim before the blank line.
inline std::string upgrade_request(std::string_view authorization, std::string_view extra = {},
                                   std::string_view path = "/connect") {
    std::string r = "GET ";
    r.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    r.append("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    if (!authorization.empty()) r.append("Authorization: ").append(authorization).append("\r\n");
    r.append(extra);
    r.append("\r\n");
    return r;
}

/// The HTTP status at the start of `head` (0 when none).
inline int http_status(std::string_view head) { return lg::upgrade_status(head); }

/// The RFC 6455 client side of one connection.
class ws_client {
public:
    explicit ws_client(std::uint16_t port, asio::ssl::context* tls = nullptr, int receive_buffer = 0)
        : socket(port, tls, receive_buffer) {}

    /// Sends the upgrade and reads the answer's head; returns its status.
    int upgrade(std::string_view authorization, std::string_view extra = {}) {
        REQUIRE(socket.write(upgrade_request(authorization, extra)));
        if (!socket.read_until("\r\n\r\n", ms(5000))) return 0;
        const auto end = socket.buffer.find("\r\n\r\n") + 4;
        head = socket.buffer.substr(0, end);
        socket.buffer.erase(0, end);
        return http_status(head);
    }

    /// Upgrades with a bearer token and reads the manifest: endpoint path ->
    /// service GUID.
    void connect(const std::string& bearer) {
        REQUIRE(upgrade("Bearer " + bearer) == 101);
        const auto deadline = clock_type::now() + ms(5000);
        while (guids.empty()) {
            auto f = read_frame(std::chrono::duration_cast<ms>(deadline - clock_type::now()));
            REQUIRE_MESSAGE(f.has_value(), "no manifest");
            remember_manifest(*f);
        }
    }

    bool send(lg::ws_opcode op, std::string_view payload) {
        std::string out;
        lg::append_client_frame(out, op, payload, 0x5a17c3e1u);
        return socket.write(out);
    }
    bool send_raw(std::string_view bytes) { return socket.write(bytes); }

    /// The next whole frame from the server; nothing on close or timeout.
    /// Control frames and fragments are returned as they come.
    std::optional<server_frame> read_frame(ms timeout) {
        const auto deadline = clock_type::now() + timeout;
        for (;;) {
            lg::ws_frame f;
            const auto r = lg::parse_server_frame(socket.buffer, 1 << 24, f);
            if (r == lg::parse_result::complete) {
                server_frame out{f.opcode, f.fin, std::string(f.payload)};
                socket.buffer.erase(0, f.size);
                return out;
            }
            REQUIRE_MESSAGE(r == lg::parse_result::need_more, "malformed frame from the server");
            const auto left = std::chrono::duration_cast<ms>(deadline - clock_type::now());
            if (left <= ms(0) || socket.read_some(left) != client_socket::read_status::data) return std::nullopt;
        }
    }

    /// Reads frames until a close frame; returns its code. Data frames
    /// before it are kept in `received`.
    std::optional<std::uint16_t> read_close(ms timeout) {
        const auto deadline = clock_type::now() + timeout;
        for (;;) {
            auto f = read_frame(std::chrono::duration_cast<ms>(deadline - clock_type::now()));
            if (!f) return std::nullopt;
            if (f->opcode == lg::ws_opcode::close) return f->close_code();
            received.push_back(std::move(*f));
        }
    }

    /// Sends a request to `path` and waits for the reply with `message_id`;
    /// other frames are kept in `received`.
    std::optional<p::frame_view> call(const std::string& path, std::string_view payload, std::uint64_t message_id,
                                      ms timeout = ms(5000)) {
        const auto it = guids.find(path);
        REQUIRE_MESSAGE(it != guids.end(), "not in the manifest: " << path);
        std::string frame;
        p::append_frame(frame, p::request_header{p::message_flags::none, 0, 1, it->second, message_id},
                        p::bytes_view(payload));
        if (!send(lg::ws_opcode::binary, frame)) return std::nullopt;
        return wait_response(message_id, timeout);
    }

    std::optional<p::frame_view> wait_response(std::uint64_t message_id, ms timeout) {
        const auto deadline = clock_type::now() + timeout;
        for (;;) {
            auto f = read_frame(std::chrono::duration_cast<ms>(deadline - clock_type::now()));
            if (!f) return std::nullopt;
            if (f->opcode == lg::ws_opcode::binary) {
                last_payload = std::make_shared<std::string>(f->payload);
                p::frame_view view;
                if (!p::decode_frame(p::bytes_view(*last_payload), view) && view.is_response() &&
                    view.message_id == message_id)
                    return view;
            }
            received.push_back(std::move(*f));
        }
    }

    /// Closes with 1000 and waits for the server's close frame and EOF.
    bool close_cleanly(ms timeout = ms(5000)) {
        if (!send(lg::ws_opcode::close, close_payload(1000))) return false;
        const auto code = read_close(timeout);
        return code == 1000 && socket.wait_closed(timeout).has_value();
    }

    client_socket socket;
    std::string head;  ///< the upgrade answer's head
    std::map<std::string, p::guid> guids;
    std::vector<server_frame> received;
    std::shared_ptr<std::string> last_payload;  ///< backs the last frame_view returned

private:
    void remember_manifest(const server_frame& f) {
        if (f.opcode != lg::ws_opcode::binary) return;
        p::frame_view view;
        if (p::decode_frame(p::bytes_view(f.payload), view) || view.is_response()) return;
        const auto j = nlohmann::json::parse(view.payload.as_chars(), nullptr, false);
        if (!j.is_object() || j.value("eventName", "") != "connect.capability-manifest") return;
        for (const auto& api : j.at("availableApis"))
            guids[api.at("endpoint").get<std::string>()] =
                p::guid_from_string(api.at("serviceId").get<std::string>());
    }
};

/// A session calling /echo every few milliseconds on its own thread while a
/// test attacks the gateway. Every reply must come back and match.
class bystander {
public:
    bystander(std::uint16_t port, const std::string& session_id, asio::ssl::context* tls = nullptr)
        : client_(port, tls) {
        client_.connect(token("bystander-" + session_id, session_id));
        thread_ = std::thread([this] { loop(); });
    }
    ~bystander() { stop(); }
    bystander(const bystander&) = delete;
    bystander& operator=(const bystander&) = delete;

    /// Lets three more calls complete (the session is still served after
    /// whatever the test did), then stops the loop. Returns the number of
    /// calls answered correctly, 0 when those three did not come.
    std::size_t stop() {
        if (thread_.joinable()) {
            const auto target = answered_.load() + 3;
            const auto deadline = clock_type::now() + ms(5000);
            while (answered_.load() < target && failures_.load() == 0 && clock_type::now() < deadline)
                std::this_thread::sleep_for(ms(5));
            running_ = false;
            thread_.join();
            if (answered_.load() < target) return 0;
        }
        return answered_;
    }
    std::size_t failures() const { return failures_; }
    std::size_t answered() const { return answered_; }

private:
    void loop() {
        std::uint64_t id = 1;
        while (running_) {
            const std::string body = "{\"n\":" + std::to_string(id) + "}";
            const auto reply = client_.call("/echo", body, id);
            if (reply && reply->code == p::response_code::ok && reply->payload.as_chars() == body)
                ++answered_;
            else
                ++failures_;
            ++id;
            std::this_thread::sleep_for(ms(10));
        }
    }

    ws_client client_;
    std::thread thread_;
    std::atomic<bool> running_{true};
    std::atomic<std::size_t> answered_{0};
    std::atomic<std::size_t> failures_{0};
};

/// A self-signed certificate for wss:// tests (tests/server/make_test_cert.py),
/// removed with this object.
struct test_certificate {
    test_certificate() {
        char pattern[] = "/tmp/gatehouse-hostile-tls-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        dir = pattern;
        const std::string command = "/usr/bin/python3 " + std::string(GATEHOUSE_SOURCE_DIR) +
                                    "/tests/server/make_test_cert.py " + dir + " >/dev/null 2>&1";
        REQUIRE(std::system(command.c_str()) == 0);
        client.set_verify_mode(asio::ssl::verify_none);
    }
    ~test_certificate() {
        std::remove(certificate().c_str());
        std::remove(private_key().c_str());
        ::rmdir(dir.c_str());
    }
    std::string certificate() const { return dir + "/cert.pem"; }
    std::string private_key() const { return dir + "/key.pem"; }

    std::string dir;
    asio::ssl::context client{asio::ssl::context::tls_client};
};

}  // namespace gatehouse::test::sockets
