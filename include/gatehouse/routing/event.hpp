// Server-pushed event frames (PROTOCOL.md §9.1) and the capability manifest
// (§7), which is framed as an event.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/routing/endpoint.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::routing {

/// `reason` values of manifests the gateway sends by itself.
namespace manifest_reason {
inline constexpr std::string_view session_connected = "session_connected";
inline constexpr std::string_view session_reconnected = "session_reconnected";
inline constexpr std::string_view capabilities_updated = "capabilities_updated";
inline constexpr std::string_view role_changed = "role_changed";
}  // namespace manifest_reason

/// ISO-8601 UTC with milliseconds: `2026-03-02T14:56:21.123Z`.
GATEHOUSE_DECL std::string iso8601_utc(std::chrono::system_clock::time_point t);

/// A random (version 4) GUID: event ids, peer GUIDs.
GATEHOUSE_DECL protocol::guid random_guid();

/// `(unix_ms << 16) | random16`, the message id of server-originated frames.
GATEHOUSE_DECL std::uint64_t new_server_message_id();

/// The 31-byte event header (flags 0x10, channel 0, sequence 0, nil GUID,
/// fresh message id) followed by `json`.
GATEHOUSE_DECL std::string event_frame(std::string_view json);

/// Event JSON: `body`'s members plus `eventName`, `eventId` (fresh GUID) and
/// `timestamp` (now), which override members of the same name. `body` must
/// be an object or null; anything else returns an empty string.
GATEHOUSE_DECL std::string event_json(std::string_view event_name, const nlohmann::json& body);

/// The manifest JSON of §7.2 for `session_id` with `routes`:
/// eventName, eventId, timestamp, sessionId, availableApis[{serviceId,
/// endpoint, service, description?}], version, reason.
GATEHOUSE_DECL std::string manifest_json(std::string_view session_id, const session_routes& routes,
                                         std::string_view reason, int version = 0);

}  // namespace gatehouse::routing

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/routing/impl/event.ipp>
#endif
