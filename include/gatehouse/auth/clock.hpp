// The time source of the authentication layer. Validators read the time
// through a `time_source` so tests (and hosts with their own clock) can move
// time without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace gatehouse::auth {

/// Returns the current time. Called on whatever thread validates; must be
/// thread-safe and must not throw.
using time_source = std::function<std::chrono::system_clock::time_point()>;

/// The wall clock, the default of every option struct.
inline time_source system_time() {
    return [] { return std::chrono::system_clock::now(); };
}

/// A clock that only moves when told to, for tests of expiry, grace periods
/// and revocation lifetimes. Copies share the same time. Thread-safe.
class manual_clock {
public:
    explicit manual_clock(std::chrono::system_clock::time_point start = std::chrono::system_clock::time_point{
                              std::chrono::seconds{1700000000}})
        : now_(std::make_shared<std::atomic<std::int64_t>>(to_ticks(start))) {}

    std::chrono::system_clock::time_point now() const noexcept {
        return std::chrono::system_clock::time_point{
            std::chrono::system_clock::duration{now_->load(std::memory_order_acquire)}};
    }
    void set(std::chrono::system_clock::time_point t) noexcept { now_->store(to_ticks(t), std::memory_order_release); }
    void advance(std::chrono::system_clock::duration d) noexcept {
        now_->fetch_add(d.count(), std::memory_order_acq_rel);
    }

    /// A time_source reading this clock; it keeps the shared state alive.
    time_source source() const {
        return [state = now_] {
            return std::chrono::system_clock::time_point{
                std::chrono::system_clock::duration{state->load(std::memory_order_acquire)}};
        };
    }

private:
    static std::int64_t to_ticks(std::chrono::system_clock::time_point t) noexcept {
        return static_cast<std::int64_t>(t.time_since_epoch().count());
    }
    std::shared_ptr<std::atomic<std::int64_t>> now_;
};

}  // namespace gatehouse::auth
