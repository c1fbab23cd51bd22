// The gateway's rate limits: a token bucket, the bucket an account's
// sessions on one node share, the connect-rate limit per source address and
// the count of open connections per source address (the upgrade gate's).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace gatehouse::server::detail {

using steady = std::chrono::steady_clock;

/// A token bucket: `capacity` tokens, refilled at `per_second`.
struct token_bucket {
    double tokens = 0;
    steady::time_point last{};

    bool take(double capacity, double per_second, steady::time_point now) noexcept {
        if (last == steady::time_point{}) {
            tokens = capacity;
        } else if (now > last) {
            // A caller that read the clock before another one took the
            // bucket arrives with an earlier `now`: no refill, and `last`
            // stays (a negative interval would take tokens away).
            const double elapsed = std::chrono::duration<double>(now - last).count();
            tokens = std::min(capacity, tokens + elapsed * per_second);
        }
        if (now > last) last = now;
        if (tokens < 1.0) return false;
        tokens -= 1.0;
        return true;
    }
};

/// The message bucket one account's sessions on this node share. Its own
/// lock: connections of one account may run on different I/O threads, and
/// no other account waits for it.
struct account_bucket {
    std::mutex mutex;
    token_bucket bucket;
    bool take(double capacity, double per_second, steady::time_point now) {
        std::lock_guard<std::mutex> lock(mutex);
        return bucket.take(capacity, per_second, now);
    }
};

/// Whether `address` is a loopback peer (127.0.0.0/8, ::1; IPv4-mapped
/// addresses arrive as IPv4).
inline bool is_loopback_address(std::string_view address) noexcept {
    return address == "::1" || address.rfind("127.", 0) == 0;
}

/// Connect-rate limit per source address. Upgrades are not the message
/// path: one mutex is fine here.
class connect_rate_limiter {
public:
    bool allow(std::string_view address, double capacity, double per_second) {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto now = steady::now();
        if (buckets_.size() >= max_tracked_addresses) prune(capacity, per_second, now);
        return buckets_[std::string(address)].take(capacity, per_second, now);
    }

private:
    static constexpr std::size_t max_tracked_addresses = 65536;

    // Forget addresses whose bucket has refilled: they are indistinguishable
    // from new ones. If every bucket is busy (an attack from many
    // addresses), forget all: the limiter then errs on the side of accepting.
    void prune(double capacity, double per_second, steady::time_point now) {
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            const double elapsed = std::chrono::duration<double>(now - it->second.last).count();
            if (it->second.tokens + elapsed * per_second >= capacity)
                it = buckets_.erase(it);
            else
                ++it;
        }
        if (buckets_.size() >= max_tracked_addresses) buckets_.clear();
    }

    std::mutex mutex_;
    std::unordered_map<std::string, token_bucket> buckets_;
};

/// Open connections per source address, for max_connections_per_address.
/// Loopback peers are not counted unless `count_loopback`. Its own mutex,
/// taken at upgrade and close only.
class address_connections {
public:
    explicit address_connections(bool count_loopback = false) noexcept : count_loopback_(count_loopback) {}

    /// Counts a connection from `address`; false (nothing counted) when it
    /// has `cap` already.
    bool admit(std::string_view address, std::size_t cap) {
        if (!count_loopback_ && is_loopback_address(address)) return true;
        std::lock_guard<std::mutex> lock(mutex_);
        auto& count = counts_[std::string(address)];
        if (count >= cap) {
            if (count == 0) counts_.erase(std::string(address));
            return false;
        }
        ++count;
        return true;
    }
    /// A connection admitted from `address` closed.
    void release(const std::string& address) {
        if (!count_loopback_ && is_loopback_address(address)) return;
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = counts_.find(address);
        if (it == counts_.end()) return;
        if (--it->second == 0) counts_.erase(it);
    }
    /// Addresses with a connection counted (each forgotten at its last close).
    std::size_t addresses() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return counts_.size();
    }

private:
    const bool count_loopback_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::size_t> counts_;
};

}  // namespace gatehouse::server::detail
