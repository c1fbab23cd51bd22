// The cluster link (gateway_core): interest on the event bus, publishing,
// delivery to sessions held elsewhere (with its retries), inbound messages.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

inline void gateway_core::bus_interest(cluster::interest_kind kind, const std::string& name, bool declare) {
    if (!bus) return;
    std::weak_ptr<gateway_core> weak = weak_from_this();
    auto done = [weak, declare](std::error_code ec) {
        // Not fatal: the bus keeps the declaration and registers it again
        // once its backend is back.
        if (!ec || ec == cluster::cluster_errc::bus_closed) return;
        if (auto core = weak.lock())
            core->log(log_level::warning, std::string("cluster: could not ") + (declare ? "declare" : "withdraw") +
                                              " interest yet: " + ec.message());
    };
    if (declare)
        bus->declare_interest(kind, name, std::move(done));
    else
        bus->withdraw_interest(kind, name, std::move(done));
}

inline void gateway_core::bus_publish(cluster::message_kind kind, std::string_view target, std::string_view payload) {
    if (!bus) return;
    cluster_published.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    bus->publish(kind, target, payload, [weak](std::error_code ec, std::size_t) {
        if (!ec) return;
        if (auto core = weak.lock()) {
            core->cluster_publish_failed.fetch_add(1, std::memory_order_relaxed);
            core->log(log_level::warning, "cluster: publish failed: " + ec.message());
        }
    });
}

inline void gateway_core::route_to_session(const std::string& session_id, std::shared_ptr<const std::string> frame,
                                           unsigned attempt) {
    // Attached here meanwhile (a retry): delivered, or queued behind its take.
    if (attempt > 0 && push_local_session(session_id, frame)) return;
    cluster_published.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    const std::string_view bytes(*frame);
    bus->publish(cluster::message_kind::to_session, session_id, bytes,
                 [weak, session_id, frame, attempt](std::error_code ec, std::size_t nodes) mutable {
                     auto core = weak.lock();
                     if (!core) return;
                     if (ec) core->cluster_publish_failed.fetch_add(1, std::memory_order_relaxed);
                     if (!ec && nodes == 0) core->push_unrouted(session_id, std::move(frame), attempt);
                 });
}

inline void gateway_core::retry_delivery(const std::string& session_id, std::shared_ptr<const std::string> frame,
                                         unsigned attempt) {
    if (attempt >= max_delivery_retries) {
        queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    std::weak_ptr<gateway_core> weak = weak_from_this();
    std::function<void()> again = [weak, session_id, frame = std::move(frame), attempt]() mutable {
        if (auto core = weak.lock()) core->route_to_session(session_id, std::move(frame), attempt + 1);
    };
    const std::uint32_t delay = 10u << attempt;
    // With another transport, and no connection that ever armed a timer on
    // this node, the store's and the bus's round trips pace the rounds.
    wakes->run_after(delay, std::move(again));
}

inline void gateway_core::push_unrouted(const std::string& session_id, std::shared_ptr<const std::string> frame,
                                        unsigned attempt) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    const std::string_view bytes(*frame);
    queue_store->append(session_id, bytes, queue_limits,
                        [weak, session_id, frame, attempt](std::error_code ec, session::queue_status status) mutable {
        auto core = weak.lock();
        if (!core) return;
        if (!ec && status.queued) {
            core->events_stored.fetch_add(1, std::memory_order_relaxed);
            core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
            return;
        }
        if (!ec) {
            // Held by a node the bus did not reach. Dead: its connection is
            // gone without a park, so park the session on its behalf. Alive:
            // its declaration may still be on its way: publish again.
            // (The holder is named before it moves into the completion: the
            // order in which a call's arguments are evaluated is unspecified.)
            const std::string named = status.holder;
            core->bus->node_alive(named, [weak, session_id, frame, attempt, holder = std::move(status.holder)](
                                             std::error_code alive_ec, bool alive) mutable {
                auto core = weak.lock();
                if (!core) return;
                if (alive_ec) {
                    core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                if (alive)
                    core->forward_to_holder(session_id, holder, std::move(frame), attempt);
                else
                    core->park_for(session_id, holder, std::move(frame), attempt);
            });
            return;
        }
        if (ec != session::session_errc::not_found) {
            core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
            core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        // No queue. Only a session whose node died with its connection (so
        // never parked it) gets one: the session store names that node. A
        // session the store names a live node for (or this one) is being
        // attached there: it has not declared it on the bus or taken its
        // queue yet, and will shortly; the event tries again then. Anything
        // else (no such session, one that ended) is not queued for.
        core->store->load(session_id, [weak, session_id, frame, attempt](std::error_code load_ec,
                                                                          session::session_record record) mutable {
            auto core = weak.lock();
            if (!core) return;
            if (load_ec && load_ec != session::session_errc::not_found)
                core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
            if (load_ec || record.node_id.empty()) return;
            if (record.node_id == core->queue_node) return core->retry_delivery(session_id, std::move(frame), attempt);
            core->bus->node_alive(record.node_id, [weak, session_id, frame, attempt, node = record.node_id](
                                                      std::error_code alive_ec, bool alive) mutable {
                auto core = weak.lock();
                if (!core) return;
                if (alive_ec) {
                    core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                    return;
                }
                if (alive) return core->retry_delivery(session_id, std::move(frame), attempt);
                core->park_for(session_id, node, std::move(frame), attempt);
            });
        });
    });
}

inline void gateway_core::forward_to_holder(const std::string& session_id, const std::string& holder,
                                            std::shared_ptr<const std::string> frame, unsigned attempt) {
    // This node holds it in the store's view (a park of ours failed, or
    // has not run yet): a park by the holder is accepted.
    if (holder == queue_node) return park_for(session_id, queue_node, std::move(frame), attempt);
    // Without a bus nobody else can hold it.
    if (!bus) {
        queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // The holder declares the session on the bus before its take, but on
    // another connection: the directory may not name it yet. Then nobody
    // receives the event, and it tries again (retry_delivery).
    cluster_published.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    bus->publish(cluster::message_kind::to_session, session_id, *frame,
                 [weak, session_id, frame, attempt](std::error_code ec, std::size_t nodes) mutable {
                     auto core = weak.lock();
                     if (!core) return;
                     if (ec) {
                         core->cluster_publish_failed.fetch_add(1, std::memory_order_relaxed);
                         core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                     } else if (nodes == 0) {
                         core->retry_delivery(session_id, std::move(frame), attempt);
                     }
                 });
}

inline void gateway_core::on_bus_message(const cluster::bus_message& m) {
    using cluster::message_kind;
    cluster_received.fetch_add(1, std::memory_order_relaxed);
    const std::string target(m.target);
    switch (m.kind) {
    case message_kind::to_session:
        push_local_session(target, std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::to_account:
        push_local_account(target, std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::to_group:
        push_local_group(target, std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::to_all:
        push_local_all(std::make_shared<const std::string>(m.payload));
        return;
    case message_kind::revoke_session:
        kick([&](const session_keys& k) { return k.session_id == target; });
        return;
    case message_kind::revoke_account:
        kick([&](const session_keys& k) { return k.account_id == target; });
        return;
    case message_kind::session_taken: {
        // One socket per session across nodes: the session now has a
        // connection on another node. Close ours; what was queued here while
        // it was parked follows it (the directory names the new node now).
        std::vector<std::shared_ptr<const std::string>> queued;
        const auto n = kick([&](const session_keys& k) { return k.session_id == target; }, kick_kind::moved,
                            &queued);
        if (n || !queued.empty()) cluster_sessions_taken.fetch_add(1, std::memory_order_relaxed);
        for (const auto& frame : queued) bus_publish(message_kind::to_session, target, *frame);
        return;
    }
    case message_kind::to_node: {
        // Commands between gateways; anything else is counted as received only.
        const std::string_view payload = m.payload;
        if (payload.rfind(replace_command, 0) == 0) {
            const std::string sid(payload.substr(replace_command.size()));
            kick([&](const session_keys& k) { return k.session_id == sid; }, kick_kind::replaced);
        }
        return;
    }
    }
}

inline void gateway_core::replace_oldest_in_cluster(const std::string& account_id, const std::string& newcomer) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    store->list_account(account_id, [weak, newcomer](std::error_code ec, std::vector<session::session_record> records) {
        auto core = weak.lock();
        if (!core) return;
        if (ec) {
            core->log(log_level::warning, "login policy: could not list an account's sessions: " + ec.message());
            return;
        }
        // Sessions a node holds (a lifetime that ended names none), oldest first.
        records.erase(std::remove_if(records.begin(), records.end(),
                                     [](const session::session_record& r) { return r.node_id.empty(); }),
                      records.end());
        const auto cap = core->options.max_sessions_per_account;
        if (records.size() <= cap) return;
        std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
            return a.created_at != b.created_at ? a.created_at < b.created_at : a.session_id < b.session_id;
        });
        auto excess = records.size() - cap;
        for (const auto& r : records) {
            if (excess == 0) break;
            if (r.session_id == newcomer) continue;
            --excess;
            if (r.node_id == core->queue_node)
                core->kick([&](const session_keys& k) { return k.session_id == r.session_id; }, kick_kind::replaced);
            else
                core->bus_publish(cluster::message_kind::to_node, r.node_id, std::string(replace_command) + r.session_id);
        }
    });
}

}  // namespace gatehouse::server::detail
