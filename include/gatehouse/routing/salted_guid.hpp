// Client-salted GUIDs (PROTOCOL.md §6): every session gets its own GUID for
// every endpoint, derived with SHA-256 from the session id, the endpoint key
// and a server salt, so a GUID means nothing outside the session it was
// issued to.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/protocol/guid.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::routing {

/// Which string the service-endpoint GUID hashes.
enum class guid_input_order {
    /// `service:{sessionId}|session:{service}:{path}|salt:{salt}`: what the live
    /// reference server computes (its call site swaps two arguments). Default:
    /// GUIDs then match a reference deployment that shares the salt.
    bannou_compatible,
    /// `service:{service}:{path}|session:{sessionId}|salt:{salt}`: the order the
    /// reference documents and its parameter names describe.
    documented,
};

/// The version nibble each kind of derived GUID carries.
enum class guid_kind : std::uint8_t {
    service = 5,
    client_pair = 6,
    shortcut = 7,
};

/// SHA-256 of `input`, first 16 bytes, version nibble `kind` in byte 6 and the
/// RFC 4122 variant in byte 8, then read as a .NET `new Guid(byte[])` does
/// (first three groups little-endian). The result matches the reference
/// byte for byte; note that the version lands in the high nibble of wire
/// byte 7, not where RFC 4122 puts it.
GATEHOUSE_DECL protocol::guid derive_guid(std::string_view input, guid_kind kind) noexcept;

/// The hash input of a service endpoint GUID. `endpoint_key` is
/// `"<service>:<path>"`; `session_id` the lowercase session GUID text.
GATEHOUSE_DECL std::string service_guid_input(std::string_view session_id, std::string_view endpoint_key,
                                              std::string_view salt,
                                              guid_input_order order = guid_input_order::bannou_compatible);

/// GUID of endpoint `endpoint_key` for session `session_id`.
GATEHOUSE_DECL protocol::guid service_guid(std::string_view session_id, std::string_view endpoint_key,
                                           std::string_view salt,
                                           guid_input_order order = guid_input_order::bannou_compatible);

/// `client:{min(a,b)}:{max(a,b)}|salt:{salt}` with ordinal (byte) comparison.
GATEHOUSE_DECL protocol::guid client_pair_guid(std::string_view a, std::string_view b, std::string_view salt);

/// `shortcut:{name}|session:{sessionId}|source:{source}|salt:{salt}`.
GATEHOUSE_DECL protocol::guid shortcut_guid(std::string_view session_id, std::string_view name,
                                            std::string_view source, std::string_view salt);

/// An endpoint key split at its first colon (`"account:/account/get"` ->
/// service `account`, path `/account/get`).
struct endpoint_key {
    std::string_view service;
    std::string_view path;

    /// A templated path (`/auth/oauth/{provider}/callback`) is never offered in
    /// a manifest: WebSocket calls carry a JSON body, not path parameters.
    bool is_template() const noexcept { return path.find('{') != std::string_view::npos; }
};

/// Empty optional when there is no colon or the service part is empty.
inline std::optional<endpoint_key> parse_endpoint_key(std::string_view key) noexcept {
    const auto colon = key.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    return endpoint_key{key.substr(0, colon), key.substr(colon + 1)};
}

}  // namespace gatehouse::routing

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/routing/impl/salted_guid.ipp>
#endif
