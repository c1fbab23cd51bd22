// Message ids and sequence numbers as the reference TypeScript client makes
// them (PROTOCOL.md §8.1): id = (unix_ms << 16) | (counter++ & 0xffff); one
// sequence counter per channel, starting at 0.
#pragma once

#include <gatehouse/protocol/message_id.hpp>

#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace gatehouse::client {

class message_sequencer {
public:
    /// A fresh message id at wall-clock time `now`.
    std::uint64_t next_message_id(std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
        return protocol::make_message_id(static_cast<std::uint64_t>(ms), static_cast<std::uint16_t>(counter_++));
    }

    /// The next sequence number of `channel`: 0, 1, 2, ... per channel.
    std::uint32_t next_sequence(std::uint16_t channel) { return sequences_[channel]++; }

private:
    std::uint32_t counter_ = 0;
    std::unordered_map<std::uint16_t, std::uint32_t> sequences_;
};

}  // namespace gatehouse::client
