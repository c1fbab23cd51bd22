// memory_event_queue_store: an event_queue_store in this process's memory.
// For several gateway nodes in one process (tests, a single host running a
// few nodes) and as the reference implementation of the contract; nodes in
// separate processes share the Redis store's queues instead.
//
// Completions run inline, before the call returns. One mutex guards the
// queues: they are touched only while sessions are parked or resumed, never
// on the message path. Expired queues are freed by the next operation that
// finds them, and all of them by a sweep at most once per second.
#pragma once

#include <gatehouse/session/event_queue_store.hpp>
#include <gatehouse/session/session.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace gatehouse::session {

class memory_event_queue_store final : public event_queue_store {
public:
    using clock = std::chrono::steady_clock;

    void park(std::string_view session_id, std::string_view node, std::vector<std::string> events,
              const event_queue_limits& limits, completion<queue_status> done) override {
        if (auto ec = check(session_id, limits)) return done(ec, {});
        if (auto ec = validate_queue_node(node)) return done(ec, {});
        queue_status status;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            const auto now = clock::now();
            auto& q = live_entry(std::string(session_id), now);
            if (!q.holder.empty() && q.holder != node) {
                status.holder = q.holder;
            } else {
                q.holder.clear();
                q.expires = now + capped(limits.retention);
                status.queued = true;
                for (auto& event : events) {
                    if (event.size() > limits.max_bytes) {
                        ++status.evicted;
                        continue;
                    }
                    status.evicted += push(q, std::move(event), now, limits);
                }
            }
        }
        done({}, std::move(status));
    }

    void append(std::string_view session_id, std::string_view event, const event_queue_limits& limits,
                completion<queue_status> done) override {
        if (auto ec = check(session_id, limits)) return done(ec, {});
        if (event.size() > limits.max_bytes) return done(session_errc::event_too_large, {});
        queue_status status;
        bool found = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            const auto now = clock::now();
            sweep(now);
            const auto it = queues_.find(std::string(session_id));
            if (it != queues_.end() && it->second.expires <= now) queues_.erase(it);
            else if (it != queues_.end()) {
                found = true;
                auto& q = it->second;
                if (!q.holder.empty()) {
                    status.holder = q.holder;
                } else {
                    status.queued = true;
                    status.evicted = push(q, std::string(event), now, limits);
                }
            }
        }
        if (!found) return done(session_errc::not_found, {});
        done({}, std::move(status));
    }

    void take(std::string_view session_id, std::string_view node, const event_queue_limits& limits,
              completion<taken_events> done) override {
        if (auto ec = check(session_id, limits)) return done(ec, {});
        if (auto ec = validate_queue_node(node)) return done(ec, {});
        taken_events taken;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            const auto now = clock::now();
            auto& q = live_entry(std::string(session_id), now);
            const auto cutoff = now - capped(limits.max_age);
            taken.events.reserve(q.events.size());
            for (auto& e : q.events) {
                if (e.at < cutoff)
                    ++taken.dropped;
                else
                    taken.events.push_back(std::move(e.bytes));
            }
            q.events.clear();
            q.bytes = 0;
            q.holder = std::string(node);
            q.expires = now + capped(limits.retention);
        }
        done({}, std::move(taken));
    }

    void discard(std::string_view session_id, done_completion done) override {
        if (!is_session_id(session_id)) return done(session_errc::invalid_session_id);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            queues_.erase(std::string(session_id));
        }
        done({});
    }

    /// Sessions with a queue or a holder record (for tests).
    std::size_t size() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return queues_.size();
    }

private:
    struct stored_event {
        clock::time_point at;
        std::string bytes;
    };
    struct queue {
        std::string holder;  ///< empty: parked
        std::deque<stored_event> events;
        std::size_t bytes = 0;
        clock::time_point expires{};
    };

    /// A duration the clock's arithmetic cannot overflow with (steady_clock
    /// counts nanoseconds in 64 bits: about 292 years): longer ones, such as
    /// milliseconds::max() for "no limit", last 100 years.
    static clock::duration capped(std::chrono::milliseconds d) noexcept {
        constexpr auto longest = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 36525));
        return std::min(d, longest);
    }

    static std::error_code check(std::string_view session_id, const event_queue_limits& limits) {
        if (!is_session_id(session_id)) return session_errc::invalid_session_id;
        return validate_queue_limits(limits);
    }

    /// The entry of a session, fresh when it was absent or expired. Lock held.
    queue& live_entry(std::string id, clock::time_point now) {
        sweep(now);
        auto& q = queues_[std::move(id)];
        if (q.expires <= now) q = queue{};
        return q;
    }

    /// Appends; returns how many old events were evicted. Lock held.
    static std::size_t push(queue& q, std::string bytes, clock::time_point now, const event_queue_limits& limits) {
        std::size_t evicted = 0;
        const auto cutoff = now - capped(limits.max_age);
        while (!q.events.empty() && (q.events.front().at < cutoff || q.events.size() >= limits.max_events ||
                                     q.bytes + bytes.size() > limits.max_bytes)) {
            q.bytes -= q.events.front().bytes.size();
            q.events.pop_front();
            ++evicted;
        }
        q.bytes += bytes.size();
        q.events.push_back(stored_event{now, std::move(bytes)});
        return evicted;
    }

    void sweep(clock::time_point now) {
        if (now < next_sweep_) return;
        next_sweep_ = now + std::chrono::seconds(1);
        for (auto it = queues_.begin(); it != queues_.end();)
            it = it->second.expires <= now ? queues_.erase(it) : std::next(it);
    }

    mutable std::mutex mutex_;
    std::unordered_map<std::string, queue> queues_;
    clock::time_point next_sweep_{};
};

}  // namespace gatehouse::session
