// Errors of the cluster layer (event bus, envelope codec and their adapters),
// as std::error_code values.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::cluster {

/// Why an envelope could not be decoded or a bus operation failed. Zero is
/// never used: a default `std::error_code` means success.
enum class cluster_errc {
    // --- envelope decoding (bytes that came over the bus) ----------------------
    envelope_truncated = 1,     ///< fewer bytes than the fixed header or than its declared lengths
    envelope_bad_magic,         ///< the first two bytes are not "gb": not a gatehouse bus envelope
    envelope_version_obsolete,  ///< format version older than this build understands (a node not upgraded)
    envelope_version_unknown,   ///< format version newer than this build understands (a node upgraded first)
    envelope_unknown_kind,      ///< the kind byte names no message kind of this format version
    envelope_bad_origin,        ///< origin node id empty or longer than max_node_id_size
    envelope_bad_target,        ///< target length wrong for the kind (empty where one is needed, or too long)
    envelope_payload_too_large, ///< declared payload longer than max_payload_size
    envelope_trailing_bytes,    ///< bytes left over after the declared payload
    // --- publishing and configuration ------------------------------------------
    invalid_node_id,            ///< node id empty, too long, or with characters outside [A-Za-z0-9._:-]
    invalid_target,             ///< target empty, too long, or given for a kind that takes none
    payload_too_large,          ///< payload longer than max_payload_size
    kind_not_publishable,       ///< session_taken is sent by the bus itself, never by a caller
    // --- backend ---------------------------------------------------------------
    bus_unavailable,            ///< the backend (e.g. Redis) is not connected; retried in the background
    timeout,                    ///< the backend did not answer within the configured timeout
    bad_reply,                  ///< the backend answered with a reply of an unexpected type or shape
    backend_error,              ///< the backend answered with an error (e.g. Redis OOM, NOAUTH)
    bus_closed,                 ///< the bus was closed before or while the operation ran
};

class cluster_category_impl final : public std::error_category {
public:
    constexpr cluster_category_impl() noexcept = default;

    const char* name() const noexcept override { return "gatehouse.cluster"; }

    std::string message(int ev) const override {
        switch (static_cast<cluster_errc>(ev)) {
        case cluster_errc::envelope_truncated: return "bus envelope truncated: fewer bytes than its header declares";
        case cluster_errc::envelope_bad_magic: return "not a gatehouse bus envelope (bad magic bytes)";
        case cluster_errc::envelope_version_obsolete:
            return "bus envelope has an obsolete format version (sender runs an older gatehouse)";
        case cluster_errc::envelope_version_unknown:
            return "bus envelope has an unknown, newer format version (sender runs a newer gatehouse)";
        case cluster_errc::envelope_unknown_kind: return "bus envelope has an unknown message kind";
        case cluster_errc::envelope_bad_origin: return "bus envelope origin node id is empty or too long";
        case cluster_errc::envelope_bad_target: return "bus envelope target is missing, too long or not allowed for its kind";
        case cluster_errc::envelope_payload_too_large: return "bus envelope payload exceeds the maximum size";
        case cluster_errc::envelope_trailing_bytes: return "bus envelope has bytes after its payload";
        case cluster_errc::invalid_node_id: return "node id is empty, too long or has characters outside [A-Za-z0-9._:-]";
        case cluster_errc::invalid_target: return "bus target is empty, too long, or not allowed for this kind";
        case cluster_errc::payload_too_large: return "bus payload exceeds the maximum size";
        case cluster_errc::kind_not_publishable: return "this message kind is sent by the bus itself and cannot be published";
        case cluster_errc::bus_unavailable: return "event bus backend unavailable (reconnecting)";
        case cluster_errc::timeout: return "event bus backend did not answer in time";
        case cluster_errc::bad_reply: return "event bus backend reply has an unexpected type or shape";
        case cluster_errc::backend_error: return "event bus backend answered with an error";
        case cluster_errc::bus_closed: return "event bus was closed";
        }
        return "unknown gatehouse.cluster error";
    }
};

namespace detail {
// Constant-initialized: decoding builds codes in this category per message.
inline const cluster_category_impl cluster_category_instance{};
}  // namespace detail

inline const std::error_category& cluster_category() noexcept { return detail::cluster_category_instance; }

inline std::error_code make_error_code(cluster_errc e) noexcept {
    return {static_cast<int>(e), cluster_category()};
}

}  // namespace gatehouse::cluster

template <>
struct std::is_error_code_enum<gatehouse::cluster::cluster_errc> : std::true_type {};
