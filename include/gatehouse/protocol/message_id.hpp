// Message ids (PROTOCOL.md §4.3, §8.1): (unix milliseconds << 16) | 16 low bits.
#pragma once

#include <cstdint>

namespace gatehouse::protocol {

/// `(unix_ms << 16) | low16`. The reference server fills `low16` at random for
/// its events; the TypeScript client uses a per-process counter.
constexpr std::uint64_t make_message_id(std::uint64_t unix_ms, std::uint16_t low16) noexcept {
    return (unix_ms << 16) | low16;
}

constexpr std::uint64_t message_id_unix_ms(std::uint64_t id) noexcept { return id >> 16; }
constexpr std::uint16_t message_id_low16(std::uint64_t id) noexcept { return static_cast<std::uint16_t>(id); }

}  // namespace gatehouse::protocol
