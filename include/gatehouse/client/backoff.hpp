// Reconnection delays: exponential backoff with full jitter, so that clients
// dropped together by a failed node do not come back together.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>

namespace gatehouse::client {

struct backoff_options {
    std::chrono::milliseconds initial{250};  ///< upper bound of the first delay
    std::chrono::milliseconds max{30000};    ///< no delay is longer
    double multiplier = 2.0;                 ///< growth of the upper bound per attempt
    /// 1.0: the delay is uniform in [0, bound] ("full jitter"); 0.0: exactly
    /// the bound. In between: uniform in [bound * (1 - jitter), bound].
    double jitter = 1.0;
    /// Attempts before giving up; 0 = never give up.
    std::uint32_t max_attempts = 0;
};

class reconnect_backoff {
public:
    /// Throws std::invalid_argument for a non-positive initial delay, max <
    /// initial, multiplier < 1 or jitter outside [0, 1].
    explicit reconnect_backoff(backoff_options o = {}, std::uint64_t seed = std::random_device{}())
        : options_(o), rng_(seed) {
        if (o.initial.count() <= 0) throw std::invalid_argument("backoff: initial delay must be positive");
        if (o.max < o.initial) throw std::invalid_argument("backoff: max delay is shorter than the initial delay");
        if (!(o.multiplier >= 1.0)) throw std::invalid_argument("backoff: multiplier must be at least 1");
        if (!(o.jitter >= 0.0 && o.jitter <= 1.0)) throw std::invalid_argument("backoff: jitter must be in [0, 1]");
    }

    /// Whether another attempt is allowed.
    bool can_retry() const noexcept { return options_.max_attempts == 0 || attempts_ < options_.max_attempts; }

    /// The delay before the next attempt; counts the attempt.
    std::chrono::milliseconds next() {
        double bound = static_cast<double>(options_.initial.count());
        for (std::uint32_t i = 0; i < attempts_ && bound < static_cast<double>(options_.max.count()); ++i)
            bound *= options_.multiplier;
        bound = std::min(bound, static_cast<double>(options_.max.count()));
        ++attempts_;
        std::uniform_real_distribution<double> pick(bound * (1.0 - options_.jitter), bound);
        return std::chrono::milliseconds(static_cast<std::int64_t>(pick(rng_)));
    }

    /// After a successful connection.
    void reset() noexcept { attempts_ = 0; }
    std::uint32_t attempts() const noexcept { return attempts_; }

private:
    backoff_options options_;
    std::mt19937_64 rng_;
    std::uint32_t attempts_ = 0;
};

}  // namespace gatehouse::client
