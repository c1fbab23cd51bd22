// The gateway's use of its session registry (detail/session_registry.hpp):
// registration and unregistration with the observer's events and the
// cluster's interest, kicks, local pushes, closing every connection.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

inline void gateway_core::release_in_store(const std::string& session_id) {
    // Only while the record still names this node: a node that took the
    // session meanwhile has written its own id. (Not atomic: a take racing
    // this load and update can lose its id; the record then looks ended.)
    auto store_ptr = store;
    std::weak_ptr<gateway_core> weak = weak_from_this();
    store->load(session_id, [weak, store_ptr](std::error_code ec, session::session_record record) {
        auto core = weak.lock();
        if (!core || ec || record.node_id != core->queue_node) return;
        record.node_id.clear();
        store_ptr->update(std::move(record), [](std::error_code, session::session_record) {});
    });
}

inline bool gateway_core::register_session(const std::shared_ptr<connection_state>& connection,
                                           const attach_facts& facts, std::shared_ptr<connection_state>& replaced,
                                           bool& resumed, event_queue& queued,
                                           std::vector<std::shared_ptr<connection_state>>& displaced) {
    const auto reg = sessions.lock();
    // Parked sessions of the account do not count: their clients are away.
    const auto live = registry::live_account_sessions(reg, connection->account_id, connection->session_id);
    if (live >= options.max_sessions_per_account) {
        if (options.account_session_policy != gateway_options::session_policy::replace_oldest) return false;
        // The oldest live sessions make room (the store's created_at; ties by id).
        std::vector<std::shared_ptr<connection_state>> others;
        for (const auto& sid : reg->accounts[connection->account_id].sessions) {
            const auto it = reg->sessions.find(sid);
            if (it != reg->sessions.end() && sid != connection->session_id && !it->second->replaced_by_policy)
                others.push_back(it->second);
        }
        std::sort(others.begin(), others.end(), [](const auto& a, const auto& b) {
            return a->session_created != b->session_created ? a->session_created < b->session_created
                                                            : a->session_id < b->session_id;
        });
        const auto excess = others.size() + 1 - std::min(others.size() + 1, options.max_sessions_per_account);
        for (std::size_t i = 0; i < excess && i < others.size(); ++i) {
            others[i]->replaced_by_policy = true;
            displaced.push_back(others[i]);
        }
    }
    const auto was_parked = reg->parked.find(connection->session_id);
    auto& slot = reg->sessions[connection->session_id];
    {
        queued_session_event event;
        event.session_id = connection->session_id;
        event.account_id = connection->account_id;
        if (observer_events) event.remote_address = connection->remote_address();
        if (slot && slot != connection) {
            event.kind = session_event_kind::resumed;
            event.resumed = session_resume_kind::takeover;
        } else if (was_parked != reg->parked.end()) {
            event.kind = session_event_kind::resumed;
            event.resumed = session_resume_kind::after_park;
        } else if (!facts.previous_node.empty() && facts.previous_node != queue_node) {
            event.kind = session_event_kind::resumed;
            event.resumed = session_resume_kind::from_other_node;
        } else {
            event.kind = session_event_kind::opened;
            event.created = facts.created;
        }
        emit(std::move(event));
    }
    // The account's shared bucket exists from its second live session here
    // on: alone, a connection's own bucket is the tighter one. Connections
    // already live get it on their own executor (a few of their messages may
    // pass before, each still within its own bucket).
    auto& account = reg->accounts[connection->account_id];
    if (!account.bucket) {
        std::vector<std::shared_ptr<connection_state>> others;
        for (const auto& sid : account.sessions) {
            const auto it = reg->sessions.find(sid);
            if (sid != connection->session_id && it != reg->sessions.end() && it->second) others.push_back(it->second);
        }
        if (!others.empty()) {
            account.bucket = std::make_shared<account_bucket>();
            for (const auto& other : others)
                connection_state::post(other, [bucket = account.bucket](connection_state& c) {
                    c.share_account_bucket(bucket);
                });
        }
    }
    if (account.bucket) connection->share_account_bucket(account.bucket);
    // New to this node (not a local replacement, not a parked one back):
    // claim it in the cluster; its previous node, if any, is told to let go.
    if (!slot && was_parked == reg->parked.end()) bus_interest(cluster::interest_kind::session, connection->session_id, true);
    if (slot && slot != connection) replaced = std::move(slot);
    slot = connection;
    if (account.sessions.empty()) bus_interest(cluster::interest_kind::account, connection->account_id, true);
    if (std::find(account.sessions.begin(), account.sessions.end(), connection->session_id) == account.sessions.end())
        account.sessions.push_back(connection->session_id);
    if (was_parked != reg->parked.end()) {
        // The session comes back: its groups and account never left it.
        auto& queue = was_parked->second.queue;
        prune_parked_locked(reg, was_parked->second, steady::now());
        reg->parked_bytes -= queue.bytes();
        reg->parked_events -= queue.size();
        queued = std::move(queue);
        reg->parked.erase(was_parked);
        resumed = true;
        sessions_resumed.fetch_add(1, std::memory_order_relaxed);
        log(log_level::debug, "parked session resumed by a reconnection with " + std::to_string(queued.size()) +
                                  " queued events");
    }
    return true;
}

inline void gateway_core::forget_session_locked(const registry_lock& reg, const std::string& session_id,
                                                const std::string& account_id) {
    bus_interest(cluster::interest_kind::session, session_id, false);
    registry::forget_memberships(reg, session_id, account_id, withdraw_interest());
}

inline void gateway_core::unregister(connection_state& connection, bool park, event_queue held,
                                     const session_ending& ending) {
    if (connection.session_id.empty()) return;
    std::shared_ptr<connection_state> successor;
    {
        const auto reg = sessions.lock();
        const auto it = reg->sessions.find(connection.session_id);
        if (it == reg->sessions.end() || it->second.get() != &connection) {
            // A replaced connection leaves the session (and its groups) to its
            // successor, which also gets what this one could not send.
            if (it != reg->sessions.end()) successor = it->second;
        } else {
            reg->sessions.erase(it);
            if (ending.moved) {
                forget_session_locked(reg, connection.session_id, connection.account_id);
                emit(session_event_kind::moved, connection.session_id, connection.account_id, ending);
            } else if (!park) {
                forget_session_locked(reg, connection.session_id, connection.account_id);
                emit(session_event_kind::closed, connection.session_id, connection.account_id, ending);
                release_in_store(connection.session_id);
            } else {
                const auto now = steady::now();
                auto& entry = reg->parked[connection.session_id];
                entry = parked_session{};
                entry.session_id = connection.session_id;
                entry.account_id = connection.account_id;
                entry.token_id = connection.attached_info->identity.token_id;
                entry.session_key = connection.attached_info->identity.session_key;
                entry.until = now + options.reconnect_window;
                entry.timers = connection.transport;
                if (queue_store && connection.awaiting_queue()) {
                    // Its take has not answered: what it held waits here,
                    // to go to the store behind the taken events.
                    entry.store_park_pending = true;
                } else if (queue_store) {
                    // Under the registry lock, so that the appends queued
                    // for it from now on reach the store after the park.
                    std::vector<std::string> events;
                    events.reserve(held.size());
                    while (!held.empty()) {
                        auto event = held.pop_front();
                        if (now - event.pushed_at > options.reconnect_queue_max_age)
                            queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                        else
                            events.emplace_back(*event.frame);
                    }
                    store_park(entry.session_id, std::move(events));
                }
                while (!held.empty()) {
                    auto event = held.pop_front();
                    event.replayed = true;
                    queue_parked_locked(reg, entry, std::move(event), now);
                }
                log(log_level::debug, "session parked for reconnection with " + std::to_string(entry.queue.size()) +
                                          " queued events");
                if (observer_events) {
                    queued_session_event event;
                    event.kind = session_event_kind::parked;
                    event.session_id = entry.session_id;
                    event.account_id = entry.account_id;
                    event.reason = ending.reason;
                    event.close_code = ending.close_code;
                    event.parked_until = std::chrono::system_clock::now() + options.reconnect_window;
                    emit(std::move(event));
                }
                arm_parked_locked(reg, entry, entry.queue.empty()
                                             ? entry.until
                                             : std::min(entry.until, entry.queue.front().pushed_at +
                                                                         options.reconnect_queue_max_age));
                return;
            }
        }
    }
    if (!held.empty() && successor) {
        auto events = std::make_shared<event_queue>(std::move(held));
        connection_state::post(successor, [events](connection_state& c) {
            while (!events->empty()) c.deliver_event(events->pop_front());
        });
    } else if (!held.empty()) {
        queued_events_dropped.fetch_add(held.size(), std::memory_order_relaxed);
    }
}

inline std::size_t gateway_core::target_locked(const registry_lock& reg, const std::string& session_id, const queued_event& event,
                                               std::vector<std::shared_ptr<connection_state>>& live) {
    const auto connected = reg->sessions.find(session_id);
    if (connected != reg->sessions.end()) {
        live.push_back(connected->second);
        return 1;
    }
    const auto waiting = reg->parked.find(session_id);
    if (waiting == reg->parked.end()) return 0;
    queue_parked_locked(reg, waiting->second, event, steady::now());
    return 1;
}

inline void gateway_core::reroute_event(const std::string& session_id, const connection_state* from,
                                        queued_event event) {
    std::shared_ptr<connection_state> successor;
    {
        const auto reg = sessions.lock();
        const auto waiting = reg->parked.find(session_id);
        if (waiting != reg->parked.end()) {
            queue_parked_locked(reg, waiting->second, std::move(event), steady::now());
            return;
        }
        const auto live = reg->sessions.find(session_id);
        if (live != reg->sessions.end() && live->second.get() != from) successor = live->second;
    }
    if (!successor) {
        queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    connection_state::post(successor, [event = std::move(event)](connection_state& c) mutable {
        c.deliver_event(std::move(event));
    });
}


inline void gateway_core::close_all(std::uint16_t code, std::string_view reason) {
    for (const auto& target : sessions.open_connections())
        connection_state::post(target, [code, why = std::string(reason)](connection_state& c) {
            c.mark_end(session_end_reason::node_stopping);
            c.notify_and_close(code, why, protocol::disconnect_reason::server_shutdown, code == 1001);
        });
}

template <class Predicate>
std::size_t gateway_core::kick(Predicate matches, kick_kind kind,
                               std::vector<std::shared_ptr<const std::string>>* handed_over) {
    std::vector<std::shared_ptr<connection_state>> targets;
    {
        const auto reg = sessions.lock();
        for (const auto& entry : reg->sessions) {
            const auto& c = *entry.second;
            const auto& who = c.attached_info->identity;
            if (matches(session_keys{c.session_id, c.account_id, who.token_id, who.session_key}))
                targets.push_back(entry.second);
        }
        for (auto it = reg->parked.begin(); it != reg->parked.end();) {
            const auto current = it++;
            if (matches(session_keys{current->first, current->second.account_id, current->second.token_id,
                                     current->second.session_key})) {
                if (handed_over) {
                    // forget_parked_locked subtracts what the queue still holds.
                    auto& queue = current->second.queue;
                    reg->parked_bytes -= queue.bytes();
                    reg->parked_events -= queue.size();
                    while (!queue.empty()) handed_over->push_back(queue.pop_front().frame);
                } else {
                    queued_events_dropped.fetch_add(current->second.queue.size(), std::memory_order_relaxed);
                    // Revoked: what the store holds for it will never be taken.
                    if (queue_store) queue_store->discard(current->first, [](std::error_code) {});
                }
                forget_parked_locked(reg, current, kind == kick_kind::replaced ? session_end_reason::replaced
                                                                           : session_end_reason::revoked,
                                     kind == kick_kind::moved);
            }
        }
    }
    for (const auto& target : targets)
        connection_state::post(target, [kind](connection_state& c) {
            switch (kind) {
            case kick_kind::revoked:
                c.mark_end(session_end_reason::revoked);
                c.notify_and_close(4002, "kicked", protocol::disconnect_reason::kicked, false);
                return;
            case kick_kind::replaced:
                c.mark_end(session_end_reason::replaced);
                c.notify_and_close(4002, "replaced by a newer session", protocol::disconnect_reason::kicked, false);
                return;
            case kick_kind::moved:
                c.mark_moved();
                c.notify_and_close(4002, "replaced by a connection on another node",
                                   protocol::disconnect_reason::kicked, false);
                return;
            }
        });
    return targets.size();
}


/// Posts `event` to the live targets (outside the registry lock).
inline void post_event(const std::vector<std::shared_ptr<connection_state>>& live, const queued_event& event) {
    for (const auto& target : live)
        connection_state::post(target, [event](connection_state& c) mutable { c.deliver_event(std::move(event)); });
}

inline std::size_t gateway_core::push_local_session(const std::string& session_id,
                                                    std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    queued_event event;
    std::size_t targets = 0;
    {
        const auto reg = sessions.lock();
        event = registry::next_event(reg, std::move(frame));
        targets = target_locked(reg, session_id, event, live);
    }
    post_event(live, event);
    return targets;
}

inline std::size_t gateway_core::push_local_account(const std::string& account_id,
                                                    std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    queued_event event;
    std::size_t targets = 0;
    {
        const auto reg = sessions.lock();
        event = registry::next_event(reg, std::move(frame));
        const auto it = reg->accounts.find(account_id);
        if (it != reg->accounts.end())
            for (const auto& sid : it->second.sessions) targets += target_locked(reg, sid, event, live);
    }
    post_event(live, event);
    return targets;
}

inline std::size_t gateway_core::push_local_group(const std::string& group, std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    queued_event event;
    std::size_t targets = 0;
    {
        const auto reg = sessions.lock();
        event = registry::next_event(reg, std::move(frame));
        const auto it = reg->groups.find(group);
        if (it != reg->groups.end())
            for (const auto& sid : it->second) targets += target_locked(reg, sid, event, live);
    }
    post_event(live, event);
    return targets;
}

inline std::size_t gateway_core::push_local_all(std::shared_ptr<const std::string> frame) {
    std::vector<std::shared_ptr<connection_state>> live;
    std::size_t targets = 0;
    queued_event event;
    {
        const auto reg = sessions.lock();
        event = registry::next_event(reg, std::move(frame));
        live.reserve(reg->sessions.size());
        for (const auto& entry : reg->sessions) live.push_back(entry.second);
        targets = live.size();
        const auto now = steady::now();
        for (auto& entry : reg->parked) {
            queue_parked_locked(reg, entry.second, event, now);
            ++targets;
        }
    }
    post_event(live, event);
    return targets;
}

}  // namespace gatehouse::server::detail
