// The gateway's side of session_observer: a bounded queue of lifecycle
// events and the one thread that hands them to the host's hooks, in order,
// so that a hook that blocks never holds up an I/O thread.
#pragma once

#include <gatehouse/server/session_observer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace gatehouse::server::detail {

enum class session_event_kind : std::uint8_t { opened, parked, resumed, moved, closed };

/// A session_event that owns its strings, waiting in the queue.
struct queued_session_event {
    session_event_kind kind = session_event_kind::opened;
    std::string session_id;
    std::string account_id;
    std::string remote_address;
    session_end_reason reason = session_end_reason::client_closed;
    std::uint16_t close_code = 0;
    std::chrono::system_clock::time_point parked_until{};
    session_resume_kind resumed = session_resume_kind::after_park;
    bool created = false;
};

class session_event_dispatcher {
public:
    using log_function = std::function<void(std::string_view)>;

    session_event_dispatcher(std::shared_ptr<session_observer> observer, std::string node_id, std::size_t limit,
                             log_function log)
        : observer_(std::move(observer)), node_id_(std::move(node_id)), limit_(limit), log_(std::move(log)) {
        thread_ = std::thread([this] { run(); });
    }
    ~session_event_dispatcher() { shutdown(); }
    session_event_dispatcher(const session_event_dispatcher&) = delete;
    session_event_dispatcher& operator=(const session_event_dispatcher&) = delete;

    /// Queues one event. Any thread; takes only the queue's own lock, so it
    /// may be called with the gateway's registry lock held.
    void post(queued_session_event event) {
        bool dropped = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopped_) return;
            if (queue_.size() >= limit_) {
                dropped = true;
            } else {
                queue_.push_back(std::move(event));
            }
        }
        if (dropped) {
            // The first drop is logged; the count tells the rest.
            if (dropped_.fetch_add(1, std::memory_order_relaxed) == 0 && log_)
                log_("session observer: event queue full (a hook blocks?); lifecycle events are being dropped");
            return;
        }
        wake_.notify_one();
    }

    /// Delivers what is queued, then stops the thread. Idempotent; never
    /// from a hook.
    void shutdown() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopped_) return;
            stopped_ = true;
        }
        wake_.notify_one();
        if (thread_.joinable()) thread_.join();
    }

    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t errors() const noexcept { return errors_.load(std::memory_order_relaxed); }
    std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
    /// Events waiting now.
    std::size_t pending() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return queue_.size() + (busy_ ? 1 : 0);
    }

private:
    void run() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopped, and everything delivered
            queued_session_event event = std::move(queue_.front());
            queue_.pop_front();
            busy_ = true;
            lock.unlock();
            deliver(event);
            lock.lock();
            busy_ = false;
        }
    }

    void deliver(const queued_session_event& e) {
        session_event view;
        view.session_id = e.session_id;
        view.account_id = e.account_id;
        view.node_id = node_id_;
        view.reason = e.reason;
        view.close_code = e.close_code;
        view.parked_until = e.parked_until;
        view.resumed = e.resumed;
        view.created = e.created;
        view.remote_address = e.remote_address;
        try {
            switch (e.kind) {
            case session_event_kind::opened: observer_->on_opened(view); break;
            case session_event_kind::parked: observer_->on_parked(view); break;
            case session_event_kind::resumed: observer_->on_resumed(view); break;
            case session_event_kind::moved: observer_->on_moved(view); break;
            case session_event_kind::closed: observer_->on_closed(view); break;
            }
        } catch (const std::exception& ex) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            if (log_) log_(std::string("session observer: a hook threw: ") + ex.what());
        } catch (...) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            if (log_) log_("session observer: a hook threw a non-standard exception");
        }
        delivered_.fetch_add(1, std::memory_order_relaxed);
    }

    const std::shared_ptr<session_observer> observer_;
    const std::string node_id_;
    const std::size_t limit_;
    const log_function log_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<queued_session_event> queue_;
    bool stopped_ = false;
    bool busy_ = false;
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> errors_{0};
    std::atomic<std::uint64_t> delivered_{0};
    std::thread thread_;
};

}  // namespace gatehouse::server::detail
