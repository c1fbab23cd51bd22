// The envelope every message on a gatehouse event bus travels in: a compact,
// versioned binary form that any node (and any backend) carries as opaque
// bytes. Decoding is zero-copy (views into the bytes) and rejects everything
// it does not fully understand with a specific cluster_errc, so that a
// rolling upgrade (nodes of two versions on one bus) or a stray publisher on
// a shared Redis is counted and ignored, never misread.
//
// Layout, format version 1 (integers big-endian):
//
//   offset size
//      0    2  magic "gb" (0x67 0x62)
//      2    1  format version (1)
//      3    1  kind (message_kind)
//      4    8  message id: unique per origin node, for duplicate suppression
//     12    1  origin node id length (1..max_node_id_size)
//     13    2  target length (0 for `all`, 1..max_target_size otherwise)
//     15    4  payload length (0..max_payload_size)
//     19       origin node id, target, payload; nothing after
//
// A new field or kind means a new format version: a receiver never guesses
// at bytes it does not know.
#pragma once

#include <gatehouse/cluster/error.hpp>
#include <gatehouse/protocol/endian.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::cluster {

/// What a message is addressed to (and, for the last three, what it means).
enum class message_kind : std::uint8_t {
    to_node = 1,         ///< target: a node id
    to_session = 2,      ///< target: a session id; reaches the node that declared it
    to_account = 3,      ///< target: an account id; reaches every node that declared it
    to_group = 4,        ///< target: a group name; reaches every node that declared it
    to_all = 5,          ///< no target; reaches every node
    revoke_session = 6,  ///< target: a session id; the holder must close it (4002)
    revoke_account = 7,  ///< target: an account id; every holder must close its sessions
    /// target: a session id. Sent by the bus itself to the node that held a
    /// session when another node declares it: the old socket must close (one
    /// socket per session across nodes). Payload: the new holder's node id.
    session_taken = 8,
};

inline constexpr std::uint8_t min_message_kind = 1;
inline constexpr std::uint8_t max_message_kind = 8;

/// Printable name of a kind ("to_session", ...), "unknown" otherwise.
constexpr std::string_view to_string(message_kind kind) noexcept {
    switch (kind) {
    case message_kind::to_node: return "to_node";
    case message_kind::to_session: return "to_session";
    case message_kind::to_account: return "to_account";
    case message_kind::to_group: return "to_group";
    case message_kind::to_all: return "to_all";
    case message_kind::revoke_session: return "revoke_session";
    case message_kind::revoke_account: return "revoke_account";
    case message_kind::session_taken: return "session_taken";
    }
    return "unknown";
}

inline constexpr std::uint8_t envelope_format_version = 1;
inline constexpr std::size_t envelope_header_size = 19;
inline constexpr std::size_t max_node_id_size = 64;
/// Session ids, account ids and group names. Matches the session layer's
/// account limit (256) with room for longer group names.
inline constexpr std::size_t max_target_size = 1024;
/// The largest payload the format allows; a bus may configure less.
inline constexpr std::size_t max_payload_size = 1024 * 1024;

/// A decoded envelope. The views point into the decoded bytes.
struct envelope_view {
    message_kind kind = message_kind::to_all;
    std::uint64_t message_id = 0;
    std::string_view origin{};
    std::string_view target{};
    std::string_view payload{};
};

/// Whether `target` is acceptable for `kind`: none for to_all, else 1..max_target_size bytes.
constexpr bool valid_target(message_kind kind, std::string_view target) noexcept {
    if (kind == message_kind::to_all) return target.empty();
    return !target.empty() && target.size() <= max_target_size;
}

/// Node ids name Redis keys and appear in logs: short, printable, no spaces.
constexpr bool valid_node_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > max_node_id_size) return false;
    for (const char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/// The encoded size of an envelope with these parts.
constexpr std::size_t envelope_size(std::string_view origin, std::string_view target,
                                    std::string_view payload) noexcept {
    return envelope_header_size + origin.size() + target.size() + payload.size();
}

/// Appends the encoded envelope to `out`. Errors (nothing appended):
/// invalid_node_id, invalid_target, payload_too_large.
inline std::error_code encode_envelope(const envelope_view& e, std::string& out,
                                       std::size_t payload_limit = max_payload_size) {
    if (!valid_node_id(e.origin)) return cluster_errc::invalid_node_id;
    const auto kind = static_cast<std::uint8_t>(e.kind);
    if (kind < min_message_kind || kind > max_message_kind || !valid_target(e.kind, e.target))
        return cluster_errc::invalid_target;
    if (e.payload.size() > payload_limit || e.payload.size() > max_payload_size) return cluster_errc::payload_too_large;
    const auto start = out.size();
    out.resize(start + envelope_size(e.origin, e.target, e.payload));
    auto* p = reinterpret_cast<std::uint8_t*>(out.data() + start);
    p[0] = 0x67;
    p[1] = 0x62;
    p[2] = envelope_format_version;
    p[3] = kind;
    protocol::store_be64(p + 4, e.message_id);
    p[12] = static_cast<std::uint8_t>(e.origin.size());
    protocol::store_be16(p + 13, static_cast<std::uint16_t>(e.target.size()));
    protocol::store_be32(p + 15, static_cast<std::uint32_t>(e.payload.size()));
    char* q = out.data() + start + envelope_header_size;
    e.origin.copy(q, e.origin.size());
    q += e.origin.size();
    e.target.copy(q, e.target.size());
    q += e.target.size();
    e.payload.copy(q, e.payload.size());
    return {};
}

/// Decodes `bytes` into `out` (views into `bytes`). On error `out` is
/// unspecified. Checks, in order: length of the fixed part (truncated),
/// magic, version (obsolete / unknown), kind, origin, target, payload limit,
/// declared lengths against the bytes (truncated, trailing).
inline std::error_code decode_envelope(std::string_view bytes, envelope_view& out,
                                       std::size_t payload_limit = max_payload_size) noexcept {
    // The magic and version are checked before the length of the fixed part,
    // so that a short foreign or future message says what it is.
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
    if (bytes.size() < 3) return cluster_errc::envelope_truncated;
    if (p[0] != 0x67 || p[1] != 0x62) return cluster_errc::envelope_bad_magic;
    if (p[2] < envelope_format_version) return cluster_errc::envelope_version_obsolete;
    if (p[2] > envelope_format_version) return cluster_errc::envelope_version_unknown;
    if (bytes.size() < envelope_header_size) return cluster_errc::envelope_truncated;
    if (p[3] < min_message_kind || p[3] > max_message_kind) return cluster_errc::envelope_unknown_kind;
    const auto kind = static_cast<message_kind>(p[3]);
    const std::size_t origin_size = p[12];
    const std::size_t target_size = protocol::load_be16(p + 13);
    const std::size_t payload_size = protocol::load_be32(p + 15);
    if (origin_size == 0 || origin_size > max_node_id_size) return cluster_errc::envelope_bad_origin;
    if (kind == message_kind::to_all ? target_size != 0 : (target_size == 0 || target_size > max_target_size))
        return cluster_errc::envelope_bad_target;
    if (payload_size > payload_limit || payload_size > max_payload_size) return cluster_errc::envelope_payload_too_large;
    const std::size_t total = envelope_header_size + origin_size + target_size + payload_size;
    if (bytes.size() < total) return cluster_errc::envelope_truncated;
    if (bytes.size() > total) return cluster_errc::envelope_trailing_bytes;
    out.kind = kind;
    out.message_id = protocol::load_be64(p + 4);
    out.origin = bytes.substr(envelope_header_size, origin_size);
    if (!valid_node_id(out.origin)) return cluster_errc::envelope_bad_origin;
    out.target = bytes.substr(envelope_header_size + origin_size, target_size);
    out.payload = bytes.substr(envelope_header_size + origin_size + target_size, payload_size);
    return {};
}

}  // namespace gatehouse::cluster
