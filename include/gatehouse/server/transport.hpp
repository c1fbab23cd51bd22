// The transport seam: what the gateway needs from a WebSocket server, and
// nothing more. The production implementation wraps websocketpp (compiled
// only where <gatehouse/server/gateway_impl.hpp> is included); tests use the
// in-memory transport of <gatehouse/server/memory_transport.hpp>.
//
// Threading contract, for both sides of the seam:
// - Each connection has a serialized context ("its executor"). Every
//   `transport_events` callback about a connection runs on that context, and
//   the gateway calls `transport_connection` members only from it, except
//   `post`, which any thread may call.
// - `on_upgrade` runs on the context of the connection being upgraded,
//   concurrently with upgrades and traffic of other connections.
#pragma once

#include <gatehouse/protocol/bytes.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::server {

enum class frame_kind : std::uint8_t { binary, text };

/// What the gateway may read from an upgrade request. Only valid during
/// `transport_events::on_upgrade`.
class upgrade_request {
public:
    virtual ~upgrade_request() = default;
    /// Value of the first header `name` (case-insensitive), empty if absent.
    virtual std::string_view header(std::string_view name) const = 0;
    /// Request target as sent: path and query, e.g. `/connect?token=abc`.
    virtual std::string_view resource() const = 0;
    /// Source address without port (`127.0.0.1`, `::1`).
    virtual std::string_view remote_address() const = 0;
    /// Entries of Sec-WebSocket-Protocol, in the order offered.
    virtual const std::vector<std::string>& offered_subprotocols() const = 0;
};

/// The gateway's answer to an upgrade request.
struct upgrade_decision {
    /// 101 accepts; anything else refuses with that status and `body`.
    int status = 101;
    std::string body;
    /// Subprotocol to answer with; empty: none (never echo a token here).
    std::string subprotocol;
    /// Opaque per-connection state the gateway gets back on `on_open`.
    std::shared_ptr<void> context;
};

/// One accepted WebSocket connection. Owned by the transport; the gateway
/// holds shared_ptrs, which keep the object (not the socket) alive.
class transport_connection {
public:
    virtual ~transport_connection() = default;

    /// Queues one whole message. The transport copies the bytes. Ignored
    /// after close. Call only on the connection's context.
    virtual void send(frame_kind kind, protocol::bytes_view bytes) = 0;
    /// Starts the closing handshake with `code` and a short `reason`
    /// (at most 123 bytes). Idempotent. Call only on the connection's context.
    virtual void close(std::uint16_t code, std::string_view reason) = 0;
    /// Sends a WebSocket ping. When no pong arrives within `pong_timeout_ms`,
    /// the transport drops the connection (`on_close` with 1006). Call only
    /// on the connection's context.
    virtual void ping(std::uint32_t pong_timeout_ms) = 0;
    /// True once the transport dropped the connection because no pong arrived within ping()'s pong_timeout_ms (on_close then reports 1006). Call only on the connection's context.
    virtual bool heartbeat_failed() const noexcept { return false; }
    /// The close code the transport itself sent, not asked by the gateway
    /// (4005 when pongs exceeded the send budget); 0: none. Call only on the
    /// connection's context.
    virtual std::uint16_t transport_close_code() const noexcept { return 0; }
    /// Bytes queued for sending and not yet handed to the socket.
    virtual std::size_t buffered_amount() const = 0;
    /// send() unless buffered_amount() plus this message would exceed
    /// `limit`: then nothing is queued and the result is false. The gateway's
    /// per-message path; transports may override it to look the connection
    /// up once. Call only on the connection's context.
    virtual bool send_within(frame_kind kind, protocol::bytes_view bytes, std::size_t limit) {
        if (buffered_amount() + bytes.size() > limit) return false;
        send(kind, bytes);
        return true;
    }
    /// Source address without port.
    virtual const std::string& remote_address() const = 0;
    /// Runs `fn` on this connection's context, later. Any thread. After the
    /// transport stops, `fn` may be destroyed without running.
    virtual void post(std::function<void()> fn) = 0;
    /// Runs `fn` on the connection's context after `delay_ms` milliseconds.
    /// Any thread. Same destruction rule as `post`. Must keep working after
    /// `on_close` for as long as the transport runs: the gateway times
    /// parked sessions (reconnection window) with the ended connection.
    virtual void post_after(std::uint32_t delay_ms, std::function<void()> fn) = 0;

    /// The gateway's per-connection state (`upgrade_decision::context`). The
    /// transport sets it before `on_open` and resets it after `on_close`,
    /// which breaks the ownership cycle between the two objects.
    void* context() const noexcept { return context_.get(); }
    void set_context(std::shared_ptr<void> context) noexcept { context_ = std::move(context); }

private:
    std::shared_ptr<void> context_;
};

/// Implemented by the gateway; called by the transport.
class transport_events {
public:
    virtual ~transport_events() = default;
    /// Synchronous: decide to accept or refuse an upgrade.
    virtual upgrade_decision on_upgrade(const upgrade_request& request) = 0;
    /// The 101 has been written; `connection->context()` is `upgrade_decision::context`.
    virtual void on_open(const std::shared_ptr<transport_connection>& connection) = 0;
    /// One complete message, reassembled. `bytes` is valid during the call only.
    virtual void on_message(const std::shared_ptr<transport_connection>& connection, frame_kind kind,
                            protocol::bytes_view bytes) = 0;
    /// The connection is gone (closing handshake done or socket failed).
    /// Called exactly once for every accepted upgrade, also when the socket
    /// failed before `on_open`. `code` is the close code the peer sent, or
    /// 1006 when none.
    virtual void on_close(const std::shared_ptr<transport_connection>& connection, std::uint16_t code) = 0;
};

}  // namespace gatehouse::server
