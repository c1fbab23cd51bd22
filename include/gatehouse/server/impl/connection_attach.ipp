// A connection from upgrade to ready (connection_state): validation, the
// session store, registration, the manifest, the queued events.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// connection_state: attach

inline void connection_state::start() {
    if (core_->options.ping_interval.count() > 0) {
        next_ping_ = steady::now() + core_->options.ping_interval;
        rearm_timer();
    }
    if (!upgrade->reconnect_token.empty()) {
        reconnecting_ = true;
        phase_ = phase::attaching;
        attach();
        return;
    }
    if (upgrade->identity_ready) {
        phase_ = phase::attaching;
        attach();
        return;
    }
    // The validator answers later; whoever comes second continues.
    bool done = false;
    {
        auto& slot = *upgrade->validation;
        std::lock_guard<std::mutex> lock(slot.mutex);
        done = slot.done;
        if (!done) slot.waiting = weak_from_this();
    }
    if (done) validated();
}

inline void connection_state::validated() {
    if (phase_ != phase::validating || closing_ || !upgrade) return;
    std::error_code error;
    {
        auto& slot = *upgrade->validation;
        std::lock_guard<std::mutex> lock(slot.mutex);
        error = slot.error;
        upgrade->identity = std::move(slot.who);
    }
    upgrade->validation.reset();
    if (error) {
        close_with(4001, "invalid credentials");
        return;
    }
    upgrade->identity_ready = true;
    phase_ = phase::attaching;
    attach();
}

inline void connection_state::attach() {
    auto& store = *core_->store;
    std::weak_ptr<connection_state> weak = weak_from_this();
    // Store completions may run inline or on any thread: come back to the
    // connection's executor before touching its state.
    // `previous_node`: the node the stored record named before this attach;
    // none: the record handed to the completion still names it.
    auto finish_as = [weak](bool existed, std::optional<std::string> previous_node) {
        return [weak, existed, previous_node = std::move(previous_node)](std::error_code ec,
                                                                          session::session_record record) {
            auto self = weak.lock();
            if (!self) return;
            connection_state::post(self, [ec, existed, previous_node,
                                          record = std::move(record)](connection_state& c) mutable {
                if (ec) {
                    c.attach_failed(ec);
                } else {
                    std::string node = previous_node ? *previous_node : record.node_id;
                    c.attached(std::move(record), existed, std::move(node));
                }
            });
        };
    };
    auto finish = finish_as(false, std::string());

    if (reconnecting_) {
        auto token = std::move(upgrade->reconnect_token);
        upgrade->reconnect_token.clear();
        store.consume_reconnect_token(token, finish_as(true, std::nullopt));
        return;
    }

    const auto& identity = upgrade->identity;
    session::session_record record;
    record.session_id = session_id_for(identity, core_->options.guid_salt);
    record.account_id = identity.subject;
    record.roles = identity.roles;
    record.permissions = identity.permissions;
    record.token_expires_at = to_session_time(identity.expires_at);
    // With a cluster, the node's id on the bus: who held the session is
    // then something other nodes can ask the bus about (node_alive).
    record.node_id = core_->queue_node;
    if (record.session_id.empty()) {
        store.create(std::move(record), std::move(finish));
        return;
    }
    // A session bound to the token: reuse it when it exists (same id after a
    // reconnect with the same token), else create it under that id.
    auto store_ptr = core_->store;
    const std::string id = record.session_id;
    store.load(id, [store_ptr, record = std::move(record), finish, finish_as](
                       std::error_code ec, session::session_record existing) mutable {
        if (ec == session::session_errc::not_found) {
            // Losing a creation race (already_exists) fails the attach: the
            // client reconnects and then finds, and checks, the winner's record.
            store_ptr->create(std::move(record), finish);
            return;
        }
        if (ec) {
            finish(ec, {});
            return;
        }
        if (existing.account_id != record.account_id) {
            finish(session::session_errc::invalid_account_id, {});
            return;
        }
        // The node it named before: another node's (it moves here) or none.
        auto finish_existing = finish_as(true, existing.node_id);
        existing.roles = std::move(record.roles);
        existing.permissions = std::move(record.permissions);
        existing.token_expires_at = record.token_expires_at;
        existing.node_id = std::move(record.node_id);
        store_ptr->update(std::move(existing), std::move(finish_existing));
    });
}

inline void connection_state::attach_failed(std::error_code error) {
    if (closing_) return;
    upgrade.reset();
    using session::session_errc;
    if (error == session_errc::revoked) {
        close_with(4002, "kicked");
    } else if (error == session_errc::not_found || error == session_errc::expired ||
               error == session_errc::token_invalid || error == session_errc::token_consumed ||
               error == session_errc::invalid_session_id || error == session_errc::invalid_account_id ||
               error == session_errc::already_exists) {
        close_with(4001, "session_expired");
    } else {
        core_->log(log_level::error, "session store failed while attaching a session: " + error.message());
        close_with(1011, "internal error");
    }
}

inline void connection_state::attached(session::session_record record, bool existed, std::string previous_node) {
    if (closing_ || phase_ != phase::attaching || !upgrade) return;
    auto& identity = upgrade->identity;
    if (reconnecting_) {
        identity = auth::identity{};
        identity.subject = record.account_id;
        identity.session_key = record.session_id;
        identity.roles = record.roles;
        identity.permissions = record.permissions;
        if (record.token_expires_at != session::time_point{}) identity.expires_at = record.token_expires_at;
    }
    session_id = record.session_id;
    account_id = record.account_id;
    session_created = record.created_at;
    const auto& timing = core_->store_timing;
    if (timing.max_lifetime.count() > 0 && record.created_at != session::time_point{})
        lifetime_end_ = record.created_at + timing.max_lifetime;

    // The identity moves into the shared session_info: one copy per
    // connection (its claims, session key...), read through attached_info.
    token_expiry_ = identity.valid_until();
    auto info = std::make_shared<routing::session_info>();
    info->session_id = session_id;
    info->account_id = account_id;
    info->identity = std::move(identity);
    info->remote_address = std::move(upgrade->remote);
    upgrade.reset();
    info->connection_id = id_;
    dispatch_.set_session(info);
    attached_info = std::move(info);

    std::shared_ptr<connection_state> replaced;
    bool resumed = false;
    event_queue queued;
    std::vector<std::shared_ptr<connection_state>> displaced;
    gateway_core::attach_facts facts;
    facts.created = !existed;
    facts.previous_node = std::move(previous_node);
    if (!core_->register_session(shared_from_this(), facts, replaced, resumed, queued, displaced)) {
        session_id.clear();  // not registered: nothing to unregister
        token_expiry_.reset();
        lifetime_end_.reset();
        close_with(4008, "too many sessions for this account");
        return;
    }
    for (const auto& old : displaced)
        connection_state::post(old, [](connection_state& c) {
            c.mark_end(session_end_reason::replaced);
            c.notify_and_close(4002, "replaced by a newer session", protocol::disconnect_reason::kicked, false);
        });
    if (core_->bus && core_->options.account_session_policy == gateway_options::session_policy::replace_oldest)
        core_->replace_oldest_in_cluster(account_id, session_id);
    // A reconnection token brought the session from another node: the record
    // names this node from now on (push_unrouted, presence, release_in_store).
    if (reconnecting_ && record.node_id != core_->queue_node) {
        auto stored = record;
        stored.node_id = core_->queue_node;
        core_->store->update(std::move(stored), [](std::error_code, session::session_record) {});
    }
    // Replayed after the manifest, merged in push order with anything pushed
    // since registration.
    while (!queued.empty()) held_.insert(queued.pop_front());
    // A session that may have been parked (here or on another node): its
    // queue is in the store. Anything pushed meanwhile waits behind it.
    if (core_->queue_store && (existed || resumed)) {
        awaiting_queue_ = true;
        core_->store_take(shared_from_this());
    }
    if (core_->options.peer_routing) {
        peer_guid_ = random_peer_guid();
        has_peer_ = true;
        core_->peers.add(peer_guid_, shared_from_this());
    }
    if (replaced)
        connection_state::post(replaced, [](connection_state& old) {
            old.notify_and_close(4002, "replaced by a new connection", protocol::disconnect_reason::kicked, false);
        });

    const auto& o = core_->options;
    // Roles and permissions matter only through the routes built from them:
    // a connection keeps no copy.
    dispatch_.routes().rebuild(core_->endpoints, session_id, o.guid_salt, o.guid_order, record.roles,
                               record.permissions);
    phase_ = phase::ready;
    dispatch_.open();
    // The first refresh is spread over the last quarter of the interval, so
    // that sessions attached together do not refresh together forever.
    {
        const auto interval = core_->refresh_interval;
        const auto spread = interval / 4;
        const auto offset = spread.count() > 0 ? std::chrono::milliseconds(static_cast<std::int64_t>(
                                                     id_ % static_cast<std::uint64_t>(spread.count())))
                                               : std::chrono::milliseconds(0);
        next_refresh_ = steady::now() + interval - offset;
    }
    schedule_expiry();
    manifest_reconnected_ = reconnecting_ || resumed;
    if (o.manifest_delay.count() > 0) {
        manifest_at_ = steady::now() + o.manifest_delay;
        rearm_timer();
        return;
    }
    std::weak_ptr<connection_state> weak = weak_from_this();
    transport->post([weak] {
        if (auto self = weak.lock())
            self->send_manifest(self->manifest_reconnected_ ? routing::manifest_reason::session_reconnected
                                                            : routing::manifest_reason::session_connected);
    });
}

inline void connection_state::send_manifest(std::string_view reason) {
    if (closing_) return;
    std::string json = routing::manifest_json(session_id, dispatch_.routes(), reason);
    if (has_peer_ && json.size() > 1 && json.back() == '}') {
        // Relayed mode (§12.1, §15): the manifest announces this connection's
        // peer GUID. Appended to the serialized object: manifest_json builds
        // the rest, and the GUID text needs no escaping.
        json.pop_back();
        json.append(",\"peerGuid\":\"").append(peer_guid_.to_string()).append("\"}");
    }
    send_frame(routing::event_frame(json));
    if (!manifest_sent_) {
        manifest_sent_ = true;
        if (!awaiting_queue_) flush_held();
    }
}

inline void connection_state::flush_held() {
    const auto cutoff = steady::now() - core_->options.reconnect_queue_max_age;
    while (!held_.empty() && !closing_) {
        auto event = held_.pop_front();
        if (event.replayed && event.pushed_at < cutoff) {
            core_->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        send_frame(protocol::bytes_view(*event.frame));
        if (event.replayed) core_->queued_events_delivered.fetch_add(1, std::memory_order_relaxed);
    }
}

inline void connection_state::deliver_event(queued_event event) {
    if (phase_ == phase::closed) {
        core_->reroute_event(session_id, this, std::move(event));
        return;
    }
    if (closing_ || !manifest_sent_ || awaiting_queue_) {
        // Bounded like the send queue it stands in for.
        if (held_.bytes() + event.frame->size() > core_->options.max_send_queue_bytes) {
            core_->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        held_.insert(std::move(event));
        return;
    }
    send_frame(protocol::bytes_view(*event.frame));
}

inline void connection_state::queue_taken(std::error_code ec, session::taken_events taken) {
    if (!awaiting_queue_) return;
    awaiting_queue_ = false;
    core_->queued_events_dropped.fetch_add(taken.dropped, std::memory_order_relaxed);
    if (ec) {
        // The events stay in the store until its retention passes; the
        // session goes on without them.
        core_->event_store_failures.fetch_add(1, std::memory_order_relaxed);
        core_->log(log_level::warning, "event queue store: could not take a resumed session's events: " + ec.message());
    }
    if (phase_ == phase::closed) {
        // Closed while the store answered: what it held was parked behind
        // this answer (store_park_pending).
        core_->taken_after_close(session_id, std::move(taken.events));
        return;
    }
    // Before anything pushed since the attach: sequence 0 sorts first, and
    // equal sequences keep their order.
    const auto now = steady::now();
    for (auto& bytes : taken.events)
        held_.insert(queued_event{0, now, std::make_shared<const std::string>(std::move(bytes)), true});
    if (manifest_sent_ && !closing_) flush_held();
}

inline bool connection_state::parkable(std::uint16_t peer_code) const noexcept {
    if (phase_ != phase::ready || session_id.empty()) return false;
    // The client left without saying goodbye (a drop, 1001 going away...):
    // it is likely to come back. 1000 means it is done with the session.
    if (server_close_code_ == 0) return peer_code != 1000;
    // Our own close: what the client will make of it (§13.2); abuse (4008)
    // does not earn a parked session.
    return server_close_code_ != 4008 && protocol::classify_close(server_close_code_).can_reconnect;
}

inline void connection_state::disconnect_by_host(std::uint16_t code, const std::string& reason) {
    mark_end(session_end_reason::kicked);
    const auto classification = protocol::classify_close(code);
    notify_and_close(code, reason, classification.reason, code != 4008 && classification.can_reconnect);
}

inline void connection_state::change_permissions(std::vector<std::string> roles, std::vector<std::string> permissions,
                                                 const std::string& reason) {
    if (closing_ || phase_ != phase::ready) return;
    const auto& o = core_->options;
    dispatch_.routes().rebuild(core_->endpoints, session_id, o.guid_salt, o.guid_order, roles, permissions);
    send_manifest(reason);

    // Keep the store's copy in step (load-modify-update: update replaces attributes too).
    auto store = core_->store;
    auto core = core_;
    store->load(session_id, [store, core, roles = std::move(roles), permissions = std::move(permissions)](
                                std::error_code ec, session::session_record record) mutable {
        if (ec) {
            core->log(log_level::warning, "could not store changed permissions: " + ec.message());
            return;
        }
        record.roles = std::move(roles);
        record.permissions = std::move(permissions);
        store->update(std::move(record), [core](std::error_code update_ec, session::session_record) {
            if (update_ec) core->log(log_level::warning, "could not store changed permissions: " + update_ec.message());
        });
    });
}

}  // namespace gatehouse::server::detail
