// The gateway's timers: every connection's timed work (pings, token expiry,
// handler and server-to-client call timeouts, the manifest delay) goes
// through one deadline queue holding each connection's earliest wake-up,
// instead of a transport timer per connection and purpose (~300 bytes each
// on every idle session). One transport timer (post_after on a connection's
// transport, the "driver") is armed for the earliest wake-up; when it fires,
// the due connections are posted their on_timer() on their own executors.
//
// Also the node's delayed work not tied to a connection (run_after): the
// transport's deferral when it installed one, else the driver.
//
// `Connection` has `deadline_hook<Connection> timer_hook`, a
// `std::shared_ptr<transport_connection> transport`, weak_from_this(),
// on_timer(), and a static post(shared_ptr<Connection>, fn) that runs
// fn(connection) on its executor.
#pragma once

#include <gatehouse/server/deadline_queue.hpp>
#include <gatehouse/server/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace gatehouse::server::detail {

template <class Connection>
class wake_scheduler : public std::enable_shared_from_this<wake_scheduler<Connection>> {
public:
    using clock = std::chrono::steady_clock;
    /// Runs a function after a delay on an I/O thread. Called with the
    /// scheduler's lock held: it only arms a timer.
    using deferral = std::function<void(std::uint32_t delay_ms, std::function<void()> fn)>;

    /// Arms or moves `c`'s wake-up to `at`. `c`'s executor.
    void schedule(Connection& c, clock::time_point at) {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.schedule(c.timer_hook, at);
        if (!driver_) driver_ = c.transport;
        arm_driver_locked(clock::now());
    }
    /// Disarms `c`'s wake-up. Any thread (also `c`'s destructor).
    void cancel(Connection& c) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.cancel(c.timer_hook);
        if (queue_.empty()) queue_.shrink_if_sparse();
    }
    /// Runs `fn` after `delay_ms`: through the deferral, else the driver;
    /// with neither (another transport, no connection yet), at once.
    void run_after(std::uint32_t delay_ms, std::function<void()> fn) {
        std::shared_ptr<transport_connection> driver;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (deferral_) return deferral_(delay_ms, std::move(fn));
            driver = driver_;
        }
        if (driver) return driver->post_after(delay_ms, std::move(fn));
        fn();
    }
    /// Installed by the built-in transport for its lifetime (empty: none).
    void set_deferral(deferral fn) {
        std::lock_guard<std::mutex> lock(mutex_);
        deferral_ = std::move(fn);
    }
    /// Hands over the driver (the gateway's shutdown), to be released
    /// outside the lock: the transport may hold the last reference to a
    /// connection, whose destructor takes the lock.
    std::shared_ptr<transport_connection> release_driver() {
        std::lock_guard<std::mutex> lock(mutex_);
        return std::move(driver_);
    }
    /// Connections with a wake-up armed.
    std::size_t armed() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return queue_.size();
    }

private:
    /// Arms the driver for the earliest wake-up unless a tick at or before
    /// it is outstanding. mutex_ held.
    void arm_driver_locked(clock::time_point now) {
        if (queue_.empty() || !driver_) return;
        const auto due = queue_.next_due();
        if (armed_ != clock::time_point{} && armed_ <= due) return;
        armed_ = due;
        // Rounded up to whole milliseconds (post_after's unit): never early.
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(due - now).count();
        const auto delay = static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 0, 24LL * 3600 * 1000));
        std::weak_ptr<wake_scheduler> weak = this->weak_from_this();
        driver_->post_after(delay, [weak, due] {
            if (auto self = weak.lock()) self->tick(due);
        });
    }
    /// The driver's timer armed for `tick` fired (driver's executor).
    void tick(clock::time_point tick) {
        std::vector<std::shared_ptr<Connection>> due;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (armed_ == tick) armed_ = {};
            const auto now = clock::now();
            while (auto* c = queue_.pop_due(now)) {
                // Null when the connection is being destroyed (its destructor
                // waits for this lock to disarm a hook that is gone already).
                if (auto alive = c->weak_from_this().lock()) due.push_back(std::move(alive));
            }
            arm_driver_locked(now);
        }
        for (const auto& c : due) Connection::post(c, [](Connection& s) { s.on_timer(); });
    }

    mutable std::mutex mutex_;
    deadline_queue<Connection> queue_;
    /// The earliest outstanding driver tick (zero: none).
    clock::time_point armed_{};
    /// The transport connection whose post_after drives the queue: the first
    /// one that scheduled a wake-up (post_after keeps working after its
    /// connection closed).
    std::shared_ptr<transport_connection> driver_;
    deferral deferral_;
};

}  // namespace gatehouse::server::detail
