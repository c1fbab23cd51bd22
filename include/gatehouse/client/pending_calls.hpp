// Calls waiting for their response, keyed by message id (PROTOCOL.md §8.4:
// a response is matched by message id alone), each with a deadline.
#pragma once

#include <gatehouse/client/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gatehouse::client {

/// `Pending` is what the caller keeps per call (typically its completion).
/// Not thread-safe: one connection's calls live on one executor.
template <class Pending, class Clock = std::chrono::steady_clock>
class pending_calls {
public:
    using time_point = typename Clock::time_point;

    explicit pending_calls(std::size_t max_pending = 65536) : max_pending_(max_pending) {}

    /// Registers a call. Errors: duplicate_message_id, too_many_pending_calls;
    /// then `pending` is left untouched, still the caller's to complete.
    std::error_code add(std::uint64_t message_id, time_point deadline, Pending&& pending) {
        if (calls_.size() >= max_pending_) return client_errc::too_many_pending_calls;
        if (calls_.count(message_id) != 0) return client_errc::duplicate_message_id;
        const auto at = deadlines_.emplace(deadline, message_id);
        calls_.emplace(message_id, entry{std::move(pending), at});
        return {};
    }

    /// The call answered by a response with this id; empty when none is
    /// pending (late, duplicate or foreign responses are dropped by callers).
    std::optional<Pending> take(std::uint64_t message_id) {
        const auto it = calls_.find(message_id);
        if (it == calls_.end()) return std::nullopt;
        Pending p = std::move(it->second.pending);
        deadlines_.erase(it->second.deadline);
        calls_.erase(it);
        return p;
    }

    /// Removes and returns every call whose deadline is not after `now`, in
    /// deadline order.
    std::vector<std::pair<std::uint64_t, Pending>> take_expired(time_point now) {
        std::vector<std::pair<std::uint64_t, Pending>> out;
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
            const auto id = deadlines_.begin()->second;
            auto p = take(id);
            out.emplace_back(id, std::move(*p));
        }
        return out;
    }

    /// Removes and returns every call (connection closed).
    std::vector<std::pair<std::uint64_t, Pending>> take_all() {
        std::vector<std::pair<std::uint64_t, Pending>> out;
        out.reserve(calls_.size());
        for (auto& [id, e] : calls_) out.emplace_back(id, std::move(e.pending));
        calls_.clear();
        deadlines_.clear();
        return out;
    }

    /// The earliest deadline, to arm one timer for all calls.
    std::optional<time_point> next_deadline() const {
        if (deadlines_.empty()) return std::nullopt;
        return deadlines_.begin()->first;
    }

    std::size_t size() const noexcept { return calls_.size(); }
    bool empty() const noexcept { return calls_.empty(); }

private:
    using deadline_index = std::multimap<time_point, std::uint64_t>;
    struct entry {
        Pending pending;
        typename deadline_index::iterator deadline;
    };

    std::size_t max_pending_;
    std::unordered_map<std::uint64_t, entry> calls_;
    deadline_index deadlines_;
};

}  // namespace gatehouse::client
