// One connection's state (connection_state): the upgrade's leftovers,
// attach, sending and held events, liveness, server-to-client calls and
// peers. Its requests go through its dispatcher (detail/dispatcher.hpp),
// for which it is the dispatch_host. The member functions are in
// gatehouse/server/impl/: connection_attach.ipp, connection_send.ipp,
// connection_calls.ipp.
#pragma once

#include <gatehouse/server/detail/gateway_core.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gatehouse::server::detail {

/// Everything the gateway knows about one connection. All members are used
/// on the connection's executor only, except the few marked otherwise.
class connection_state final : public dispatch_host, public std::enable_shared_from_this<connection_state> {
public:
    enum class phase : std::uint8_t { validating, attaching, ready, closed };

    connection_state(std::shared_ptr<gateway_core> core, std::uint64_t id, std::string remote)
        : core_(std::move(core)), id_(id) {
        upgrade->remote = std::move(remote);
    }
    /// gateway_core::wakes (its lock guards it).
    deadline_hook<connection_state> timer_hook{this};
    ~connection_state();
    connection_state(const connection_state&) = delete;
    connection_state& operator=(const connection_state&) = delete;

    // --- set during the upgrade, before the transport knows the connection ---
    /// What only the upgrade and the attachment need; freed once the session
    /// is attached (or the connection closed): an idle session keeps none of it.
    struct upgrade_state {
        auth::identity identity;
        bool identity_ready = false;
        std::shared_ptr<validation_slot> validation;
        std::string reconnect_token;  ///< secret; cleared once used
        std::string remote;           ///< then in session_info::remote_address
    };
    std::unique_ptr<upgrade_state> upgrade = std::make_unique<upgrade_state>();
    /// on_open reported it to the metrics sink (connection executor).
    bool counted_open = false;
    /// The close code this side sent (0: none).
    std::uint16_t close_code_sent() const noexcept { return server_close_code_; }

    /// Set in on_open, never changed: any thread may post through it once
    /// it got the connection from the session registry.
    std::shared_ptr<transport_connection> transport;

    std::uint64_t id() const noexcept { return id_; }
    /// Attached session id and account: written before registration, then
    /// immutable (readable by any thread that found the connection in the registry).
    std::string session_id;
    std::string account_id;
    /// The session as attached (identity included): set before registration,
    /// then immutable like session_id; revocation matching reads it from
    /// other threads. Handlers get the dispatcher's session(), which a refresh replaces.
    std::shared_ptr<const routing::session_info> attached_info;
    /// The session's created_at in the store: set before registration, then
    /// immutable (replace_oldest compares it under the registry lock).
    session::time_point session_created{};
    /// Counted in gateway_core::addresses (connection executor).
    bool address_counted = false;
    /// Chosen by the login policy replace_oldest to make room (registry lock).
    bool replaced_by_policy = false;
    /// At registration (connection executor).
    void share_account_bucket(std::shared_ptr<account_bucket> bucket) noexcept {
        dispatch_.share_account_bucket(std::move(bucket));
    }
    /// The attached session's source address: any thread that found the
    /// connection in the registry (attached_info is immutable by then).
    const std::string& attached_remote_address() const noexcept { return attached_info->remote_address; }
    /// The source address: the upgrade's, then the attached session's
    /// (connection executor: `upgrade` is freed there).
    const std::string& remote_address() const noexcept {
        static const std::string none;
        if (upgrade) return upgrade->remote;
        return attached_info ? attached_info->remote_address : none;
    }

    /// Why this side is closing, for the observer (kept from the first
    /// decision to close: later ones do not change it).
    void mark_end(session_end_reason reason) noexcept {
        if (!has_end_reason_ && !closing_ && !notifying_) {
            has_end_reason_ = true;
            end_reason_ = reason;
        }
    }
    /// Another node took the session (session_taken).
    void mark_moved() noexcept {
        if (!closing_ && !notifying_) moved_ = true;
    }
    /// How the connection ended, once closed (`peer_code` as on_close got it).
    session_ending ending(std::uint16_t peer_code) const noexcept;

    void start();
    void validated();
    void on_frame(frame_kind kind, protocol::bytes_view bytes) { dispatch_.on_frame(kind == frame_kind::text, bytes); }
    void on_closed();
    /// The wake-up scheduled through gateway_core::wakes is due (or
    /// earlier: every check compares with the clock).
    void on_timer();
    /// False when the frame was not handed to the transport (closing, or
    /// the send queue overflowed and the connection is now closing).
    bool send_frame(protocol::bytes_view bytes);
    /// send_frame for a response frame with `code`, counted by the sink.
    void send_response(protocol::bytes_view bytes, protocol::response_code code) override;
    void close_with(std::uint16_t code, std::string_view reason) override;
    /// Sends `connect.disconnect-notification` (with a reconnection token
    /// when `reconnectable` and the store issues one), then closes.
    void notify_and_close(std::uint16_t code, std::string_view close_reason, std::string_view reason,
                          bool reconnectable);
    /// A refreshed credential for this session (/connect/refresh).
    void refreshed(auth::identity fresh);
    void change_permissions(std::vector<std::string> roles, std::vector<std::string> permissions,
                            const std::string& reason);

    /// A pushed event: sent, or held until the manifest has gone out (so
    /// that it follows the manifest and any replayed events), or, once the
    /// connection is closing, kept for the session's next connection.
    void deliver_event(queued_event event);
    /// gateway::disconnect: notification (with a reconnection token when the
    /// client may come back), then close.
    void disconnect_by_host(std::uint16_t code, const std::string& reason);
    /// Whether the session should be parked now that the connection ended
    /// with `peer_code` (the peer's close code, 1006 when none).
    bool parkable(std::uint16_t peer_code) const noexcept;
    /// Events held back (connection executor; the connection is closed).
    event_queue take_held() noexcept { return std::move(held_); }
    /// Its take from the event queue store has not answered yet.
    bool awaiting_queue() const noexcept { return awaiting_queue_; }
    /// The event queue store answered the take of this session's queue.
    void queue_taken(std::error_code ec, session::taken_events taken);

    // --- server-to-client requests (§12.3) ---
    void start_client_call(std::shared_ptr<client_call> call, const client_call_options& options, std::string payload);

    // --- peers (§12) ---
    /// Sends a peer frame forwarded from another connection; false when this
    /// connection can no longer take it.
    bool accept_peer_frame(protocol::bytes_view bytes);
    /// The sender's side of a forwarded peer message: acknowledge or 31.
    void peer_result(const protocol::request_header& header, const protocol::guid& target, bool delivered);

    /// Runs `fn(connection)` on the connection's executor.
    template <class F>
    static void post(const std::shared_ptr<connection_state>& connection, F fn) {
        auto* transport = connection->transport.get();
        transport->post([connection, fn = std::move(fn)]() mutable { fn(*connection); });
    }

private:
    struct pending_client_call {
        std::shared_ptr<client_call> call;
        steady::time_point deadline;
    };

    void attach();
    /// `existed`: the session was stored before this connection (a
    /// reconnection, or a credential naming an existing session);
    /// `previous_node`: the node its record named before this attach.
    void attached(session::session_record record, bool existed, std::string previous_node);
    /// Touches the session in the store (liveness), at most one at a time.
    void refresh();
    void refresh_answered(std::error_code ec);
    void attach_failed(std::error_code error);
    void send_manifest(std::string_view reason);
    // --- dispatch_host: what the dispatcher asks of its connection ---
    bool client_response(const protocol::frame_view& frame) override { return complete_client_call(frame); }
    void peer_frame(const protocol::frame_view& frame, protocol::bytes_view bytes) override { route_peer(frame, bytes); }
    void deadline_changed() override { rearm_timer(); }
    void post_answer(std::shared_ptr<pending_call> call, protocol::response_code code, bool binary,
                     std::string payload) override;
    std::weak_ptr<dispatch_host> weak_host() noexcept override { return weak_from_this(); }

    void schedule_expiry();
    /// Asks the core for a wake-up at the earliest of this connection's
    /// deadlines, if that is earlier than the one already requested.
    void rearm_timer();
    void send_notification(std::string_view reason, const session::reconnect_token* token);
    void flush_held();
    bool complete_client_call(const protocol::frame_view& frame);
    void client_call_timed_out(std::uint64_t message_id);
    void fail_client_calls(std::error_code ec);
    void finish_client_call(const std::shared_ptr<client_call>& call, std::error_code ec, client_reply reply);
    void route_peer(const protocol::frame_view& frame, protocol::bytes_view bytes);

    std::shared_ptr<gateway_core> core_;
    const std::uint64_t id_;

    phase phase_ = phase::validating;
    bool closing_ = false;
    bool reconnecting_ = false;
    /// The request side: frame checks, channels, handler calls, answers.
    /// Holds the session_info handlers get and the session's routes.
    dispatcher dispatch_{*this, core_->dispatch};
    bool notifying_ = false;
    /// When the current credential expires (refresh moves it); zero: never.
    /// With the validator's leeway (auth::identity::valid_until): the rule
    /// of the upgrade applies while connected too.
    std::optional<std::chrono::system_clock::time_point> token_expiry_;
    /// created_at + the store's max_lifetime; zero: the store does not say.
    std::optional<std::chrono::system_clock::time_point> lifetime_end_;
    /// Liveness: the next touch of the session (zero: none), one at a time.
    steady::time_point next_refresh_{};
    bool refreshing_ = false;
    std::uint8_t refresh_failures_ = 0;
    bool has_end_reason_ = false;
    session_end_reason end_reason_ = session_end_reason::client_closed;
    bool moved_ = false;

    // --- timed work (see gateway_core "timers"); zero: nothing scheduled ---
    steady::time_point wake_{};          ///< the wake-up last requested
    steady::time_point next_ping_{};
    steady::time_point expiry_check_{};  ///< compare token_expiry_ with the system clock
    steady::time_point manifest_at_{};
    bool manifest_reconnected_ = false;

    /// Events waiting for the manifest, or for the next connection.
    event_queue held_;
    bool manifest_sent_ = false;
    /// Events wait in held_ until the store's queue of this session arrived.
    bool awaiting_queue_ = false;
    /// The close code this side sent (0: none; the peer closed or vanished).
    std::uint16_t server_close_code_ = 0;
    /// Created with the first server-to-client call (most sessions get none).
    std::unique_ptr<std::unordered_map<std::uint64_t, pending_client_call>> client_calls_;
    std::unordered_map<std::uint64_t, pending_client_call>& client_calls() {
        if (!client_calls_) client_calls_ = std::make_unique<std::unordered_map<std::uint64_t, pending_client_call>>();
        return *client_calls_;
    }
    bool no_client_calls() const noexcept { return !client_calls_ || client_calls_->empty(); }
    protocol::guid peer_guid_{};
    bool has_peer_ = false;
};

}  // namespace gatehouse::server::detail
