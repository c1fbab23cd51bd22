// A connection's output and lifetime (connection_state): frames out,
// notifications and closes, token expiry and refresh, timers, the end.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// connection_state: sending and closing

inline bool connection_state::send_frame(protocol::bytes_view bytes) {
    if (closing_) return false;
    if (!transport->send_within(frame_kind::binary, bytes, core_->options.max_send_queue_bytes)) {
        core_->log(log_level::warning, "send queue limit exceeded; closing slow consumer with 4005");
        close_with(4005, "slow consumer");
        return false;
    }
    if (auto* m = core_->metrics) m->on_message_out(bytes.size());
    return true;
}

inline void connection_state::send_response(protocol::bytes_view bytes, protocol::response_code code) {
    if (send_frame(bytes))
        if (auto* m = core_->metrics) m->on_response(code);
}

inline void connection_state::close_with(std::uint16_t code, std::string_view reason) {
    if (closing_) return;
    closing_ = true;
    dispatch_.closing();
    server_close_code_ = code;
    if (transport) transport->close(code, reason);
}

inline void connection_state::send_notification(std::string_view reason, const session::reconnect_token* token) {
    nlohmann::json body = {{"reason", reason}, {"reconnectable", token != nullptr}};
    if (token) {
        body["reconnectionToken"] = token->token;
        body["expiresAt"] = routing::iso8601_utc(token->expires_at);
    }
    send_frame(routing::event_frame(routing::event_json(protocol::event_names::disconnect_notification, body)));
}

inline void connection_state::notify_and_close(std::uint16_t code, std::string_view close_reason,
                                               std::string_view reason, bool reconnectable) {
    if (closing_ || notifying_) return;
    // Only an attached session can be told anything useful (§13.3, §18).
    if (phase_ != phase::ready) {
        close_with(code, close_reason);
        return;
    }
    if (!reconnectable) {
        send_notification(reason, nullptr);
        close_with(code, close_reason);
        return;
    }
    notifying_ = true;
    std::weak_ptr<connection_state> weak = weak_from_this();
    core_->store->issue_reconnect_token(
        session_id, core_->options.reconnect_window,
        [weak, code, close_reason = std::string(close_reason), reason = std::string(reason)](
            std::error_code ec, session::reconnect_token token) {
            auto self = weak.lock();
            if (!self) return;
            connection_state::post(self, [ec, code, close_reason, reason, token = std::move(token)](connection_state& c) {
                if (ec) c.core_->log(log_level::warning, "no reconnection token for a disconnect: " + ec.message());
                c.send_notification(reason, ec ? nullptr : &token);
                c.close_with(code, close_reason);
            });
        });
}

inline void connection_state::schedule_expiry() {
    // The token ends with the validator's leeway (the rule of the upgrade);
    // the session at the store's max_lifetime.
    std::optional<std::chrono::system_clock::time_point> end;
    if (token_expiry_) end = token_expiry_;
    if (lifetime_end_ && (!end || *lifetime_end_ < *end)) end = lifetime_end_;
    if (!end) {
        expiry_check_ = {};
        return;
    }
    // The expiry is wall-clock time; the check is re-armed in steps of at
    // most a day, and on_timer compares with the system clock again.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*end - std::chrono::system_clock::now());
    const auto step = std::min<std::int64_t>(std::max<std::int64_t>(left.count(), 0), 24LL * 3600 * 1000);
    expiry_check_ = steady::now() + std::chrono::milliseconds(step);
    rearm_timer();
}

inline void connection_state::refreshed(auth::identity fresh) {
    if (closing_ || phase_ != phase::ready) return;
    token_expiry_ = fresh.valid_until();
    auto info = std::make_shared<routing::session_info>(*dispatch_.session());
    info->identity = std::move(fresh);
    dispatch_.set_session(std::move(info));
    schedule_expiry();  // never expiring now: the pending check is dropped
}

inline void connection_state::rearm_timer() {
    if (phase_ == phase::closed) return;
    steady::time_point earliest{};
    const auto consider = [&earliest](steady::time_point t) {
        if (t != steady::time_point{} && (earliest == steady::time_point{} || t < earliest)) earliest = t;
    };
    consider(manifest_at_);
    if (!closing_) consider(next_ping_);
    consider(expiry_check_);
    if (!closing_ && !refreshing_) consider(next_refresh_);
    consider(dispatch_.next_deadline());
    if (client_calls_)
        for (const auto& entry : *client_calls_) consider(entry.second.deadline);
    if (earliest == steady::time_point{}) return;  // a wake-up already requested is harmless
    if (wake_ != steady::time_point{} && wake_ <= earliest) return;
    wake_ = earliest;
    core_->wakes->schedule(*this, earliest);
}

inline void connection_state::on_timer() {
    wake_ = {};
    if (phase_ == phase::closed) return;
    const auto now = steady::now();
    if (manifest_at_ != steady::time_point{} && manifest_at_ <= now) {
        manifest_at_ = {};
        send_manifest(manifest_reconnected_ ? routing::manifest_reason::session_reconnected
                                            : routing::manifest_reason::session_connected);
    }
    if (next_ping_ != steady::time_point{} && next_ping_ <= now && !closing_) {
        transport->ping(static_cast<std::uint32_t>(core_->options.pong_timeout.count()));
        next_ping_ = now + core_->options.ping_interval;
    }
    if (expiry_check_ != steady::time_point{} && expiry_check_ <= now) {
        expiry_check_ = {};
        const auto wall = std::chrono::system_clock::now();
        if (closing_) {
            // nothing left to expire
        } else if (lifetime_end_ && *lifetime_end_ <= wall) {
            mark_end(session_end_reason::max_lifetime);
            notify_and_close(4001, "max lifetime reached", protocol::disconnect_reason::session_expired, false);
        } else if (token_expiry_ && *token_expiry_ <= wall) {
            mark_end(session_end_reason::token_expired);
            notify_and_close(4001, "session expired", protocol::disconnect_reason::session_expired, false);
        } else {
            schedule_expiry();
        }
    }
    if (next_refresh_ != steady::time_point{} && next_refresh_ <= now && !closing_ && !refreshing_) refresh();
    const auto call_deadline = dispatch_.next_deadline();
    if (call_deadline != steady::time_point{} && call_deadline <= now) dispatch_.sweep(now);
    if (!no_client_calls()) {
        std::vector<std::uint64_t> due;
        for (const auto& entry : *client_calls_)
            if (entry.second.deadline <= now) due.push_back(entry.first);
        for (const auto id : due) client_call_timed_out(id);
    }
    rearm_timer();
}

inline void connection_state::refresh() {
    refreshing_ = true;
    next_refresh_ = {};
    std::weak_ptr<connection_state> weak = weak_from_this();
    core_->store->touch(session_id, [weak](std::error_code ec) {
        auto self = weak.lock();
        if (!self) return;
        connection_state::post(self, [ec](connection_state& c) { c.refresh_answered(ec); });
    });
}

inline void connection_state::refresh_answered(std::error_code ec) {
    refreshing_ = false;
    if (closing_ || phase_ != phase::ready) return;
    using session::session_errc;
    const auto interval = core_->refresh_interval;
    if (!ec) {
        core_->session_refreshes.fetch_add(1, std::memory_order_relaxed);
        refresh_failures_ = 0;
        next_refresh_ = steady::now() + interval;
    } else if (ec == session_errc::revoked) {
        // Revoked in the store by a path that did not reach this node.
        mark_end(session_end_reason::revoked);
        notify_and_close(4002, "kicked", protocol::disconnect_reason::kicked, false);
        return;
    } else if (ec == session_errc::expired || ec == session_errc::not_found) {
        // The store ended it: its max_lifetime (a store whose timing() did
        // not say), or it was lost (expired during an outage, deleted).
        const bool lifetime = lifetime_end_ && *lifetime_end_ <= std::chrono::system_clock::now();
        mark_end(lifetime || core_->store_timing.max_lifetime.count() == 0 ? session_end_reason::max_lifetime
                                                                            : session_end_reason::store_failure);
        notify_and_close(4001, lifetime ? "max lifetime reached" : "session expired",
                         protocol::disconnect_reason::session_expired, false);
        return;
    } else {
        // Backend trouble: the connection stays; try again soon, backing off.
        core_->refresh_failed(ec);
        if (refresh_failures_ < 16) ++refresh_failures_;
        const auto backoff = std::chrono::milliseconds(1000) * (1LL << std::min<int>(refresh_failures_ - 1, 10));
        next_refresh_ = steady::now() + std::min<std::chrono::milliseconds>(backoff, interval);
    }
    rearm_timer();
}

inline session_ending connection_state::ending(std::uint16_t peer_code) const noexcept {
    session_ending e;
    const std::uint16_t transport_code = transport ? transport->transport_close_code() : 0;
    const std::uint16_t own_code = server_close_code_ != 0 ? server_close_code_ : transport_code;
    e.close_code = own_code != 0 ? own_code : peer_code;
    e.moved = moved_;
    if (core_->stopping.load(std::memory_order_acquire)) {
        e.reason = session_end_reason::node_stopping;
    } else if (has_end_reason_) {
        e.reason = end_reason_;
    } else if (own_code != 0) {
        switch (own_code) {
        case 4005: e.reason = session_end_reason::slow_consumer; break;
        case 1009:
        case 4008: e.reason = session_end_reason::protocol_violation; break;
        case 1011: e.reason = session_end_reason::store_failure; break;
        default: e.reason = session_end_reason::kicked; break;
        }
    } else if (transport && transport->heartbeat_failed()) {
        e.reason = session_end_reason::heartbeat_timeout;
    } else if (peer_code == 1006) {
        e.reason = session_end_reason::dropped;
    } else {
        e.reason = session_end_reason::client_closed;
    }
    return e;
}

inline void connection_state::on_closed() {
    closing_ = true;
    phase_ = phase::closed;
    upgrade.reset();
    if (has_peer_) core_->peers.remove(peer_guid_, this);
    fail_client_calls(core_->stopping.load(std::memory_order_acquire) ? server_errc::not_running
                                                                      : server_errc::client_call_disconnected);
    dispatch_.stop();
    core_->wakes->cancel(*this);
}

}  // namespace gatehouse::server::detail
