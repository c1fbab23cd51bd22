// Defaults of the reference server that a conforming peer relies on.
#pragma once

#include <cstdint>
#include <string_view>

namespace gatehouse::protocol {

inline constexpr std::uint16_t default_max_channel = 1000;  ///< channel > this -> 13
inline constexpr std::uint32_t default_messages_per_minute = 1000;

/// `eventName` values the protocol itself defines.
namespace event_names {
inline constexpr std::string_view capability_manifest = "connect.capability-manifest";
inline constexpr std::string_view disconnect_notification = "connect.disconnect-notification";
}  // namespace event_names

}  // namespace gatehouse::protocol
