// The flags byte at offset 0 of every frame (PROTOCOL.md §4.4).
#pragma once

#include <cstdint>
#include <string_view>

namespace gatehouse::protocol {

/// One bit per enumerator; combine with `|`. All eight bits are named: the two
/// reserved ones are kept by name so that they are never reused by accident and
/// so that a frame carrying them can still be described.
enum class message_flags : std::uint8_t {
    none = 0x00,
    binary = 0x01,         ///< payload is opaque bytes, not JSON
    reserved_0x02 = 0x02,  ///< "Encrypted" in old Bannou documents; unused
    compressed = 0x04,     ///< server to client only: payload is a raw Brotli stream
    reserved_0x08 = 0x08,  ///< "HighPriority" in old Bannou documents; unused
    event = 0x10,          ///< fire-and-forget request, or a pushed event
    client = 0x20,         ///< route to another client (peer or broadcast)
    response = 0x40,       ///< a reply: 16-byte header. Alone decides the header kind
    meta = 0x80,           ///< describe the endpoint; the channel carries the meta type
};

constexpr message_flags operator|(message_flags a, message_flags b) noexcept {
    return static_cast<message_flags>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
constexpr message_flags operator&(message_flags a, message_flags b) noexcept {
    return static_cast<message_flags>(static_cast<std::uint8_t>(a) & static_cast<std::uint8_t>(b));
}
constexpr message_flags operator^(message_flags a, message_flags b) noexcept {
    return static_cast<message_flags>(static_cast<std::uint8_t>(a) ^ static_cast<std::uint8_t>(b));
}
constexpr message_flags operator~(message_flags a) noexcept {
    return static_cast<message_flags>(static_cast<std::uint8_t>(~static_cast<std::uint8_t>(a)));
}
constexpr message_flags& operator|=(message_flags& a, message_flags b) noexcept { return a = a | b; }
constexpr message_flags& operator&=(message_flags& a, message_flags b) noexcept { return a = a & b; }

/// True when every bit of `bits` is set in `flags`.
constexpr bool has_flags(message_flags flags, message_flags bits) noexcept {
    return (flags & bits) == bits && bits != message_flags::none;
}

constexpr std::uint8_t to_byte(message_flags f) noexcept { return static_cast<std::uint8_t>(f); }

/// Bits a conforming sender never sets. A receiver ignores them.
inline constexpr message_flags reserved_flags = message_flags::reserved_0x02 | message_flags::reserved_0x08;

/// The name of one flag bit ("Binary", "Event", ...), as the TypeScript SDK
/// spells it. Empty for `none` or for a value with more than one bit set.
constexpr std::string_view flag_name(message_flags single_bit) noexcept {
    switch (single_bit) {
    case message_flags::binary: return "Binary";
    case message_flags::reserved_0x02: return "Reserved0x02";
    case message_flags::compressed: return "Compressed";
    case message_flags::reserved_0x08: return "Reserved0x08";
    case message_flags::event: return "Event";
    case message_flags::client: return "Client";
    case message_flags::response: return "Response";
    case message_flags::meta: return "Meta";
    default: return {};
    }
}

}  // namespace gatehouse::protocol
