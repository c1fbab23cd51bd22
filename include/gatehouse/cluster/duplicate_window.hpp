// duplicate_window: remembers the last N (origin node, message id) pairs a
// node has delivered, so that a message handed over twice (a publisher's
// retry, a stream re-read after a reconnect, a replayed pub/sub message) is
// delivered once. Bounded: the oldest pair is forgotten when a new one
// arrives at capacity, so memory never grows with traffic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace gatehouse::cluster {

class duplicate_window {
public:
    /// `capacity` pairs (at least 1) are remembered.
    explicit duplicate_window(std::size_t capacity) : ring_(capacity == 0 ? 1 : capacity) {
        seen_.reserve(ring_.size());
    }

    /// True the first time a pair is seen within the window; false for a
    /// duplicate. Allocation-free once the set has grown to capacity.
    bool first_time(std::string_view origin, std::uint64_t message_id) {
        const key k{std::hash<std::string_view>{}(origin), message_id};
        if (seen_.count(k) != 0) return false;
        if (size_ == ring_.size()) {
            seen_.erase(ring_[next_]);
        } else {
            ++size_;
        }
        ring_[next_] = k;
        next_ = (next_ + 1) % ring_.size();
        seen_.insert(k);
        return true;
    }

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return ring_.size(); }

private:
    // The origin is kept as a 64-bit hash: a false duplicate needs two
    // origins with equal hashes AND equal message ids (random 64-bit starts).
    struct key {
        std::size_t origin_hash = 0;
        std::uint64_t message_id = 0;
        bool operator==(const key& o) const noexcept {
            return origin_hash == o.origin_hash && message_id == o.message_id;
        }
    };
    struct key_hash {
        std::size_t operator()(const key& k) const noexcept {
            return static_cast<std::size_t>(k.message_id * 0x9e3779b97f4a7c15ULL) ^ k.origin_hash;
        }
    };

    std::vector<key> ring_;
    std::unordered_set<key, key_hash> seen_;
    std::size_t next_ = 0;
    std::size_t size_ = 0;
};

}  // namespace gatehouse::cluster
