// Parking (gateway_core): parked sessions, their queues in memory, and the
// calls to the event_queue_store.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

inline void gateway_core::store_park(const std::string& session_id, std::vector<std::string> events) {
    // Kept for the refusal case only (another node took the session meanwhile).
    auto offered = std::make_shared<std::vector<std::string>>(events);
    std::weak_ptr<gateway_core> weak = weak_from_this();
    queue_store->park(session_id, queue_node, std::move(events), queue_limits,
                      [weak, session_id, offered](std::error_code ec, session::queue_status status) {
                          auto core = weak.lock();
                          if (!core) return;
                          if (ec) {
                              core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
                              core->queued_events_dropped.fetch_add(offered->size(), std::memory_order_relaxed);
                              core->log(log_level::warning,
                                        "event queue store: could not park a session: " + ec.message());
                              return;
                          }
                          if (!status.queued) {
                              for (const auto& frame : *offered)
                                  core->forward_to_holder(session_id, status.holder,
                                                          std::make_shared<const std::string>(frame));
                              return;
                          }
                          core->events_stored.fetch_add(offered->size(), std::memory_order_relaxed);
                          core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
                      });
}

inline void gateway_core::store_append(const std::string& session_id, std::shared_ptr<const std::string> frame) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    const std::string_view bytes(*frame);
    queue_store->append(session_id, bytes, queue_limits,
                        [weak, session_id, frame = std::move(frame)](std::error_code ec, session::queue_status status) {
                            auto core = weak.lock();
                            if (!core) return;
                            if (ec) {
                                // not_found: no node parked it (or its window passed).
                                if (ec != session::session_errc::not_found) {
                                    core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
                                    core->log(log_level::warning,
                                              "event queue store: could not queue an event: " + ec.message());
                                }
                                core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                                return;
                            }
                            if (!status.queued) return core->forward_to_holder(session_id, status.holder, frame);
                            core->events_stored.fetch_add(1, std::memory_order_relaxed);
                            core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
                        });
}

inline void gateway_core::store_take(const std::shared_ptr<connection_state>& connection) {
    std::weak_ptr<connection_state> weak = connection;
    std::weak_ptr<gateway_core> weak_core = weak_from_this();
    queue_store->take(
        connection->session_id, queue_node, queue_limits,
        [weak, weak_core, session_id = connection->session_id](std::error_code ec, session::taken_events taken) {
            if (auto self = weak.lock()) {
                connection_state::post(self, [ec, taken = std::move(taken)](connection_state& c) mutable {
                    c.queue_taken(ec, std::move(taken));
                });
                return;
            }
            // The connection is gone already: its events go where its session went.
            auto core = weak_core.lock();
            if (!core) return;
            if (ec) core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
            core->queued_events_dropped.fetch_add(taken.dropped, std::memory_order_relaxed);
            core->taken_after_close(session_id, std::move(taken.events));
        });
}

inline void gateway_core::park_for(const std::string& session_id, const std::string& node,
                                   std::shared_ptr<const std::string> frame, unsigned attempt) {
    std::weak_ptr<gateway_core> weak = weak_from_this();
    std::vector<std::string> events{*frame};
    queue_store->park(session_id, node, std::move(events), queue_limits,
                      [weak, session_id, frame, attempt](std::error_code ec, session::queue_status status) {
                          auto core = weak.lock();
                          if (!core) return;
                          if (ec) {
                              core->event_store_failures.fetch_add(1, std::memory_order_relaxed);
                              core->queued_events_dropped.fetch_add(1, std::memory_order_relaxed);
                          } else if (!status.queued) {
                              core->forward_to_holder(session_id, status.holder, frame, attempt);
                          } else {
                              core->events_stored.fetch_add(1, std::memory_order_relaxed);
                              core->queued_events_dropped.fetch_add(status.evicted, std::memory_order_relaxed);
                          }
                      });
}

inline void gateway_core::taken_after_close(const std::string& session_id, std::vector<std::string> taken) {
    {
        const auto reg = sessions.lock();
        const auto it = reg->parked.find(session_id);
        if (it != reg->parked.end() && it->second.store_park_pending) {
            auto& entry = it->second;
            entry.store_park_pending = false;
            while (!entry.queue.empty()) {
                const auto event = entry.queue.pop_front();
                reg->parked_bytes -= event.frame->size();
                --reg->parked_events;
                taken.emplace_back(*event.frame);
            }
            store_park(session_id, std::move(taken));
            return;
        }
    }
    // Not parked here (any more): to its live connection here, or wherever
    // it is now.
    const auto now = steady::now();
    for (auto& bytes : taken) {
        auto frame = std::make_shared<const std::string>(std::move(bytes));
        if (sessions.find(session_id))
            reroute_event(session_id, nullptr, queued_event{0, now, std::move(frame), true});
        else
            forward_to_holder(session_id, {}, std::move(frame));
    }
}

inline void gateway_core::prune_parked_locked(const registry_lock& reg, parked_session& entry, steady::time_point now) {
    const auto cutoff = now - options.reconnect_queue_max_age;
    std::size_t dropped = 0;
    while (!entry.queue.empty() && entry.queue.front().pushed_at < cutoff) {
        const auto size = entry.queue.front().frame->size();
        entry.queue.pop_front();
        reg->parked_bytes -= size;
        --reg->parked_events;
        ++dropped;
    }
    if (dropped) {
        entry.dropped += dropped;
        queued_events_dropped.fetch_add(dropped, std::memory_order_relaxed);
    }
}

inline void gateway_core::queue_parked_locked(const registry_lock& reg, parked_session& entry, queued_event event, steady::time_point now) {
    if (queue_store && !entry.store_park_pending) {
        store_append(entry.session_id, std::move(event.frame));
        return;
    }
    prune_parked_locked(reg, entry, now);
    const auto size = event.frame->size();
    const auto drop = [&](std::size_t n) {
        if (entry.dropped == 0)
            log(log_level::debug, "reconnection queue of a parked session is full; dropping events");
        entry.dropped += n;
        queued_events_dropped.fetch_add(n, std::memory_order_relaxed);
    };
    if (now - event.pushed_at > options.reconnect_queue_max_age || size > options.reconnect_queue_max_bytes) {
        drop(1);
        return;
    }
    // Per session: evict the oldest (the newest state matters most to a game
    // client). Per node: refuse the newcomer rather than steal from others.
    std::size_t evicted = 0;
    while (!entry.queue.empty() && (entry.queue.bytes() + size > options.reconnect_queue_max_bytes ||
                                    entry.queue.size() >= options.reconnect_queue_max_events)) {
        const auto old = entry.queue.front().frame->size();
        entry.queue.pop_front();
        reg->parked_bytes -= old;
        --reg->parked_events;
        ++evicted;
    }
    if (evicted) drop(evicted);
    if (reg->parked_bytes + size > options.reconnect_queue_total_bytes) {
        drop(1);
        return;
    }
    const bool was_empty = entry.queue.empty();
    event.replayed = true;
    entry.queue.insert(std::move(event));
    reg->parked_bytes += size;
    ++reg->parked_events;
    // Aged-out events are freed by a timer too, not only when touched.
    if (was_empty) arm_parked_locked(reg, entry, std::min(entry.until, entry.queue.front().pushed_at +
                                                                   options.reconnect_queue_max_age));
}

inline void gateway_core::arm_parked_locked(const registry_lock&, parked_session& entry, steady::time_point wake) {
    if (entry.next_wake != steady::time_point{} && entry.next_wake <= wake) return;
    entry.next_wake = wake;
    if (!entry.timers) return;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wake - steady::now()).count();
    // post_after takes 32-bit milliseconds: far wakes re-arm in steps.
    const auto delay = static_cast<std::uint32_t>(std::clamp<std::int64_t>(left + 1, 1, 24LL * 3600 * 1000));
    std::weak_ptr<gateway_core> weak = weak_from_this();
    entry.timers->post_after(delay, [weak, session_id = entry.session_id, wake] {
        if (auto core = weak.lock()) core->parked_timer(session_id, wake);
    });
}

inline void gateway_core::parked_timer(const std::string& session_id, steady::time_point wake) {
    const auto reg = sessions.lock();
    const auto it = reg->parked.find(session_id);
    // Another timer took over, or the session is gone or back.
    if (it == reg->parked.end() || it->second.next_wake != wake) return;
    auto& entry = it->second;
    entry.next_wake = {};
    const auto now = steady::now();
    if (now >= entry.until) {
        sessions_expired.fetch_add(1, std::memory_order_relaxed);
        const auto left = entry.queue.size();
        queued_events_dropped.fetch_add(left, std::memory_order_relaxed);
        log(log_level::debug, "parked session expired without reconnection; " +
                                  std::to_string(entry.dropped + left) + " events dropped");
        forget_parked_locked(reg, it, session_end_reason::reconnect_window_elapsed);
        return;
    }
    prune_parked_locked(reg, entry, now);
    arm_parked_locked(reg, entry, entry.queue.empty() ? entry.until
                                                 : std::min(entry.until, entry.queue.front().pushed_at +
                                                                             options.reconnect_queue_max_age));
}

inline void gateway_core::forget_parked_locked(const registry_lock& reg, std::unordered_map<std::string, parked_session>::iterator it,
                                               session_end_reason reason, bool moved) {
    reg->parked_bytes -= it->second.queue.bytes();
    reg->parked_events -= it->second.queue.size();
    // Nobody else may hold this session now: it has no connection.
    if (reg->sessions.count(it->first) == 0) {
        forget_session_locked(reg, it->first, it->second.account_id);
        session_ending ending;
        ending.reason = reason;
        emit(moved ? session_event_kind::moved : session_event_kind::closed, it->first, it->second.account_id, ending);
        if (!moved && reason != session_end_reason::revoked) release_in_store(it->first);
    }
    reg->parked.erase(it);
}

}  // namespace gatehouse::server::detail
