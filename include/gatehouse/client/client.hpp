// gatehouse::client::client: a native client of the protocol for C++ game
// clients, bots, tests and tools.
//
// It connects with a credential, waits for the capability manifest, calls
// endpoints by path (callback or std::future), receives events by name, reacts
// to manifest updates, exchanges peer messages, answers server-to-client
// requests, classifies closes (PROTOCOL.md §13.2) and, when asked to,
// reconnects by itself with exponential backoff and jitter, using the
// reconnection token of a disconnect notification when one arrived.
//
// COMPILING THE WEBSOCKET TRANSPORT. As with the gateway, websocketpp is kept
// out of public headers (g++ rejects its headers in C++20 mode): exactly one
// C++17 translation unit of the program includes
//     #include <gatehouse/client/client_impl.hpp>
// (with GATEHOUSE_SEPARATE_COMPILATION: the one that includes
// <gatehouse/impl/src.hpp>). Forgetting it is a link error naming
// `gatehouse::client::detail::make_websocket_client_transport`.
//
// Threading: every public member may be called from any thread. The client's
// state lives on a strand of the io_context given at creation; every callback
// the client invokes (connect, call, event, disconnect handlers) runs on that
// strand, one at a time. Run the io_context on as many threads as you like.
//
// Lifetime: create() returns a shared_ptr; pending operations keep the client
// alive. Call close() and let the io_context finish the close before
// destroying the io_context.
#pragma once

#include <gatehouse/client/backoff.hpp>
#include <gatehouse/client/disconnect.hpp>
#include <gatehouse/client/error.hpp>
#include <gatehouse/client/manifest.hpp>
#include <gatehouse/client/pending_calls.hpp>
#include <gatehouse/client/sequencing.hpp>
#include <gatehouse/detail/config.hpp>
#include <gatehouse/protocol.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gatehouse::client {

/// How the client authenticates its upgrade (the Authorization header).
enum class credential_scheme {
    bearer,     ///< "Bearer <token>": a JWT
    api_key,    ///< "ApiKey <key>"
    reconnect,  ///< "Reconnect <token>": a reconnection token
};

struct client_options {
    /// ws://host:port/connect or wss://...
    std::string url = "ws://127.0.0.1:9000/connect";
    credential_scheme scheme = credential_scheme::bearer;
    /// The token or key. A secret: the client never logs it.
    std::string credential;
    /// Extra upgrade headers (Origin, ...).
    std::vector<std::pair<std::string, std::string>> headers;

    /// TCP + TLS + WebSocket handshake.
    std::chrono::milliseconds connect_timeout{10000};
    /// From the 101 to the first capability manifest (§14: the reference
    /// client waits 30 s).
    std::chrono::milliseconds manifest_timeout{30000};
    /// Default per-call timeout (§8.4).
    std::chrono::milliseconds call_timeout{30000};
    std::size_t max_pending_calls = 65536;
    /// Largest message accepted from the server.
    std::size_t max_message_size = 16 * 1024 * 1024;

    /// Reconnect by itself after a close the protocol marks reconnectable
    /// (1001, 1002-1015, 4000-4999 other than 4001/4002, or any close after a
    /// disconnect notification with a reconnection token).
    bool auto_reconnect = false;
    backoff_options backoff;

    /// wss:// only: verify the server certificate against this CA file (PEM);
    /// empty: the system's default trust store.
    std::string tls_ca_file;
    bool tls_verify_peer = true;
};

struct call_options {
    std::uint16_t channel = 0;
    /// 0: client_options::call_timeout.
    std::chrono::milliseconds timeout{0};
    /// Sets the Binary flag: the payload is opaque bytes, not JSON.
    bool binary = false;
};

/// A reply to a call. A non-zero `code` is the server's answer, not a
/// transport failure: the error_code of the completion stays empty.
struct response {
    protocol::response_code code = protocol::response_code::ok;
    protocol::message_flags flags = protocol::message_flags::response;
    std::uint16_t channel = 0;
    std::uint32_t sequence = 0;
    std::uint64_t message_id = 0;
    std::string payload;  ///< JSON text unless binary(); empty on any error code

    bool ok() const noexcept { return code == protocol::response_code::ok; }
    bool binary() const noexcept { return protocol::has_flags(flags, protocol::message_flags::binary); }
};

/// A pushed event (§9).
struct event {
    std::string name;     ///< eventName
    std::string payload;  ///< the JSON text
};

/// A frame the server sent that is neither a response nor an event: a
/// server-to-client request (§12.3), or a peer message when `peer` is set.
struct incoming_request {
    protocol::request_header header;
    std::string payload;
    bool peer() const noexcept { return protocol::has_flags(header.flags, protocol::message_flags::client); }
};

namespace detail {

/// What the transport reports; called on any I/O thread.
class client_transport_events {
public:
    virtual ~client_transport_events() = default;
    virtual void transport_open() = 0;
    virtual void transport_message(std::string payload, bool binary) = 0;
    /// The connection closed (after it was open); `code` is the close code
    /// received (1006 when none).
    virtual void transport_closed(std::uint16_t code, std::string reason) = 0;
    /// Opening failed; `http_status` is the upgrade's answer, 0 if none.
    virtual void transport_failed(std::error_code ec, int http_status) = 0;
};

class client_transport {
public:
    virtual ~client_transport() = default;
    /// Opens one connection; reports through `events`, which must stay valid
    /// (the client passes a weak handle and checks it).
    virtual void open(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
                      std::weak_ptr<client_transport_events> events) = 0;
    virtual void send(std::string bytes, bool binary) = 0;
    virtual void close(std::uint16_t code, const std::string& reason) = 0;
};

/// Defined in gatehouse/client/impl/client_websocket.ipp (see the top of this file).
std::shared_ptr<client_transport> make_websocket_client_transport(asio::io_context& io,
                                                                  const client_options& options);

class client_core;
}  // namespace detail

class client {
public:
    using connect_handler = std::function<void(std::error_code)>;
    using call_handler = std::function<void(std::error_code, response)>;
    using event_handler = std::function<void(const event&)>;
    using capabilities_handler = std::function<void(const capability_diff&)>;
    using disconnect_handler = std::function<void(const disconnect_info&)>;
    /// Answers an incoming request: code and payload of the response frame.
    using reply_function = std::function<void(protocol::response_code, std::string payload, bool binary)>;
    using request_handler = std::function<void(const incoming_request&, reply_function)>;

    /// Throws std::invalid_argument for invalid options (bad URL scheme, zero
    /// timeouts, invalid backoff).
    GATEHOUSE_DECL static std::shared_ptr<client> create(asio::io_context& io, client_options options);
    /// For tests: a client over another transport.
    GATEHOUSE_DECL static std::shared_ptr<client> create(asio::io_context& io, client_options options,
                                                         std::shared_ptr<detail::client_transport> transport);
    GATEHOUSE_DECL ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Connects and completes once the first capability manifest has been
    /// processed. Errors: already_connecting, connect_failed, upgrade_* (by
    /// HTTP status), manifest_timeout, connection_closed.
    GATEHOUSE_DECL void async_connect(connect_handler done);
    GATEHOUSE_DECL std::future<void> connect();

    /// Calls `endpoint` (the manifest's path, e.g. "/account/get"). Errors:
    /// not_connected, unknown_endpoint, too_many_pending_calls, call_timeout,
    /// call_cancelled (connection closed first).
    GATEHOUSE_DECL void async_call(std::string endpoint, std::string payload, call_options options,
                                   call_handler done);
    /// The future throws std::system_error with the same errors.
    GATEHOUSE_DECL std::future<response> call(std::string endpoint, std::string payload, call_options options = {});

    /// Fire and forget (Event flag): no reply on success. Errors are only
    /// those known locally (not_connected, unknown_endpoint), reported to
    /// `done` if given.
    GATEHOUSE_DECL void send_event(std::string endpoint, std::string payload, std::uint16_t channel = 0,
                                   connect_handler done = nullptr);

    /// A peer message (Client flag) to another client's peer GUID (§12.1).
    /// With `event` false the gateway acknowledges delivery with a response.
    GATEHOUSE_DECL void async_send_peer(protocol::guid peer, std::string payload, bool event, call_handler done);

    /// Swaps in a new access token through the gateway's /connect/refresh
    /// endpoint; on success later reconnects use it.
    GATEHOUSE_DECL void async_refresh(std::string access_token, call_handler done);

    /// Handlers; set them before connecting. Events are matched by exact
    /// name; the manifest event is delivered too after it was processed.
    GATEHOUSE_DECL void on_event(std::string name, event_handler handler);
    GATEHOUSE_DECL void on_capabilities(capabilities_handler handler);
    GATEHOUSE_DECL void on_disconnect(disconnect_handler handler);
    GATEHOUSE_DECL void on_request(request_handler handler);
    /// Called after every successful (re)connection, once the manifest is in.
    GATEHOUSE_DECL void on_connected(std::function<void()> handler);

    /// Closes (1000 "Client disconnecting" by default); pending calls fail
    /// with call_cancelled; no automatic reconnection follows.
    GATEHOUSE_DECL void close(std::uint16_t code = 1000, std::string reason = "Client disconnecting");

    /// Snapshots, any thread.
    GATEHOUSE_DECL bool connected() const;
    GATEHOUSE_DECL std::optional<protocol::guid> session_id() const;
    GATEHOUSE_DECL std::optional<protocol::guid> peer_guid() const;
    GATEHOUSE_DECL std::vector<std::string> endpoints() const;
    /// The HTTP status of the last refused upgrade (0 if none).
    GATEHOUSE_DECL int last_http_status() const;

private:
    explicit client(std::shared_ptr<detail::client_core> core) : core_(std::move(core)) {}
    std::shared_ptr<detail::client_core> core_;
};

}  // namespace gatehouse::client

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/client/impl/client.ipp>
#endif
