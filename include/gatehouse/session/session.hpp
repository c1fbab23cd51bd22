// The session record a session store keeps (PROTOCOL.md §15), its limits and
// the options every store shares.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/session/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::session {

/// Session times are wall-clock milliseconds: records are shared between
/// nodes and persisted, so a monotonic clock would mean nothing elsewhere.
using session_clock = std::chrono::system_clock;
using time_point = std::chrono::time_point<session_clock, std::chrono::milliseconds>;

/// Now, truncated to milliseconds.
inline time_point now_ms() noexcept {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(session_clock::now());
}

/// Everything a store keeps about one session. The store owns the fields
/// marked "store": values a caller puts there are ignored on create/update.
/// Every member has a default, so designated initializers may name any subset.
struct session_record {
    /// Lowercase GUID text (8-4-4-4-12). Empty on create: the store assigns a
    /// random one.
    std::string session_id{};
    /// The authenticated subject; indexes the session for revoke_account and
    /// list_account. Immutable after create.
    std::string account_id{};
    std::vector<std::string> roles{};
    /// Capabilities granted to the session (e.g. "service:/path").
    std::vector<std::string> permissions{};

    time_point created_at{};     ///< store: set on create, immutable
    time_point last_activity{};  ///< store: create, touch and token consumption
    /// store: min(last_activity + idle_timeout, created_at + max_lifetime),
    /// but at least until an outstanding reconnection token expires.
    time_point expires_at{};
    /// When the access token the session was opened with expires (zero:
    /// unknown). The gateway disconnects with 4001 unless it is refreshed.
    time_point token_expires_at{};
    /// The gateway node that holds the session's connection ("" while none).
    std::string node_id{};
    /// store: expiry of the outstanding reconnection token, zero when none.
    /// The token itself is never stored or returned by load: only its hash.
    time_point reconnect_expires_at{};
    /// A few host-defined values (see session_limits).
    std::map<std::string, std::string, std::less<>> attributes{};
};

/// Upper bounds on what a record may hold, so that a host bug or a hostile
/// claim cannot make a store grow without bound. Checked on create and update.
struct session_limits {
    std::size_t max_account_id_size = 256;
    std::size_t max_roles = 64;
    std::size_t max_permissions = 4096;
    /// Each role, each permission and the node id.
    std::size_t max_name_size = 256;
    std::size_t max_attributes = 16;
    std::size_t max_attribute_key_size = 64;
    std::size_t max_attribute_value_size = 1024;
};

/// Options every store honours. Defaults follow the reference server.
struct session_store_options {
    /// Sliding expiry: a session not touched for this long expires.
    std::chrono::milliseconds idle_timeout = std::chrono::minutes(30);
    /// Absolute cap on a session's life, however often it is touched.
    std::chrono::milliseconds max_lifetime = std::chrono::hours(24);
    /// How long an expired or revoked session is still reported as `expired`
    /// or `revoked` (rather than `not_found`) before its memory is freed.
    std::chrono::milliseconds tombstone_retention = std::chrono::minutes(1);
    /// Longest reconnection window issue_reconnect_token accepts.
    std::chrono::milliseconds max_reconnect_window = std::chrono::hours(1);
    session_limits limits{};
};

/// Reconnection tokens: 32 random bytes in standard base64 (44 characters),
/// as the reference server issues them.
inline constexpr std::size_t reconnect_token_size = 44;

/// What issue_reconnect_token hands out. The token is a secret: never log it.
struct reconnect_token {
    std::string token{};
    time_point expires_at{};
};

/// Checks a record against `limits` before a store accepts it: account id,
/// session id (when not empty), roles, permissions, node id, attributes.
GATEHOUSE_DECL std::error_code validate_record(const session_record& record, const session_limits& limits) noexcept;

/// True when `id` is lowercase 8-4-4-4-12 GUID text, the only form stores use
/// as a key (so "ABC..." and "abc..." cannot name two sessions).
GATEHOUSE_DECL bool is_session_id(std::string_view id) noexcept;

/// A random (version 4) session id from the system's CSPRNG.
GATEHOUSE_DECL std::string random_session_id();

/// A fresh reconnection token (CSPRNG, 32 bytes, base64).
GATEHOUSE_DECL std::string random_reconnect_token();

/// True when `token` has the shape random_reconnect_token produces.
GATEHOUSE_DECL bool is_reconnect_token(std::string_view token) noexcept;

/// SHA-256 of the token, as 64 lowercase hex digits. Stores index tokens by
/// this hash: the secret itself is never kept, and a lookup reveals nothing
/// about it through timing.
GATEHOUSE_DECL std::string reconnect_token_hash(std::string_view token);

}  // namespace gatehouse::session

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/session/impl/session.ipp>
#endif
