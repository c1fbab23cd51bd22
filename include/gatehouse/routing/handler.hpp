// What a host's endpoint code sees: the request, the session it came from,
// and a responder to answer it with (PROTOCOL.md §8, §18).
//
// Threading: a handler (or router) is called on the connection's executor
// (an I/O thread of the gateway). It must not block. It may answer at once,
// or keep the responder and answer later from any thread; the answer is
// posted back to the connection's executor. Exactly one answer counts: later
// ones return false. A responder destroyed without an answer answers 60
// (Service_InternalServerError); so does the gateway's handler timeout.
#pragma once

#include <gatehouse/auth/identity.hpp>
#include <gatehouse/protocol/bytes.hpp>
#include <gatehouse/protocol/flags.hpp>
#include <gatehouse/protocol/response_code.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace gatehouse::routing {

struct endpoint;

/// The session a request belongs to. Immutable once the session is attached;
/// shared, so a handler may keep it past its call.
struct session_info {
    /// Session id: the lowercase GUID text the manifest carries.
    std::string session_id;
    /// The account (identity subject).
    std::string account_id;
    /// Who the credential says this is. Roles and permissions here are the
    /// ones of the credential; the live set (after host changes) is what the
    /// manifest offers.
    auth::identity identity;
    /// Source address of the connection, without port.
    std::string remote_address;
    /// Unique per connection within this gateway (a replaced connection of
    /// the same session gets a new one).
    std::uint64_t connection_id = 0;
};

/// One request as routed. Valid during the handler call only, except
/// `session`, which the handler may copy.
struct request {
    std::shared_ptr<const session_info> session;
    const endpoint* target = nullptr;  ///< the endpoint the GUID resolved to
    protocol::message_flags flags = protocol::message_flags::none;
    std::uint16_t channel = 0;
    std::uint32_t sequence = 0;
    std::uint64_t message_id = 0;
    /// The request payload (JSON unless flags carry Binary). Copy it to keep it.
    protocol::bytes_view payload;

    bool is_event() const noexcept { return protocol::has_flags(flags, protocol::message_flags::event); }
};

namespace detail {
/// The gateway's side of a responder: receives exactly one outcome.
/// Implementations are thread-safe.
class call_completion {
public:
    virtual ~call_completion() = default;
    /// Returns false when an answer was already taken (or the call timed out).
    virtual bool complete(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept = 0;
};
}  // namespace detail

/// Answers one request, once. Move-only. Any thread.
class responder {
public:
    responder() noexcept = default;
    explicit responder(std::shared_ptr<detail::call_completion> call) noexcept : call_(std::move(call)) {}
    responder(responder&&) noexcept = default;
    responder& operator=(responder&& other) noexcept {
        if (this != &other) {
            abandon();
            call_ = std::move(other.call_);
        }
        return *this;
    }
    responder(const responder&) = delete;
    responder& operator=(const responder&) = delete;
    ~responder() { abandon(); }

    /// Success with a JSON body (may be empty). Response flags 0x40.
    bool reply(std::string_view json) noexcept { return finish(protocol::response_code::ok, false, json); }
    /// Success with opaque bytes. Response flags 0x41 (Binary).
    bool reply_binary(protocol::bytes_view bytes) noexcept { return finish(protocol::response_code::ok, true, bytes); }
    /// Failure with `code` (50..53 and 60 are the backend codes; any code is
    /// sent as given). Error replies carry no payload. `ok` is taken as 60:
    /// a success needs `reply`.
    bool fail(protocol::response_code code) noexcept {
        if (code == protocol::response_code::ok) code = protocol::response_code::backend_internal_error;
        return finish(code, false, {});
    }
    /// The answer of an HTTP backend: 2xx statuses are success with `body`,
    /// others map as the reference server maps them (§5).
    bool reply_http(int status, std::string_view body) noexcept {
        const auto code = protocol::from_http_status(status);
        return code == protocol::response_code::ok ? reply(body) : fail(code);
    }

    /// False for a default-constructed or already-used responder.
    bool pending() const noexcept { return call_ != nullptr; }

private:
    bool finish(protocol::response_code code, bool binary, protocol::bytes_view payload) noexcept {
        if (!call_) return false;
        auto call = std::move(call_);
        return call->complete(code, binary, payload);
    }
    void abandon() noexcept {
        if (call_) finish(protocol::response_code::backend_internal_error, false, {});
    }

    std::shared_ptr<detail::call_completion> call_;
};

/// An endpoint's code.
using handler = std::function<void(const request&, responder)>;

/// Forwards whole services elsewhere (an HTTP backend, another process)
/// instead of one handler per endpoint. `request::target` tells which
/// endpoint was called. Same threading rules as a handler. Implementations
/// must be thread-safe when the gateway runs more than one I/O thread.
class router {
public:
    virtual ~router() = default;
    virtual void async_route(const request& req, responder answer) = 0;
};

}  // namespace gatehouse::routing
