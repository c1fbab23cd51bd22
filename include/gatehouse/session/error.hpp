// Errors of the session layer (stores and their adapters), as std::error_code values.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::session {

/// Why a session store operation failed. Zero is never used: a default
/// `std::error_code` means success.
enum class session_errc {
    not_found = 1,        ///< no session with this id (never created, or gone long ago)
    expired,              ///< the session existed but its idle timeout or maximum lifetime has passed
    revoked,              ///< the session was revoked (singly or with its account)
    already_exists,       ///< create: a session with this id is already stored
    invalid_session_id,   ///< the session id is not GUID text
    invalid_account_id,   ///< the account id is empty or longer than the limit
    token_invalid,        ///< reconnection token malformed, unknown, superseded or past its window
    token_consumed,       ///< reconnection token already used (it works exactly once)
    invalid_window,       ///< reconnection window not positive or above the store's maximum
    too_many_attributes,  ///< more host attributes than the limit allows
    attribute_too_large,  ///< a host attribute key or value exceeds its size limit
    record_too_large,     ///< roles, permissions or node id exceed their limits
    backend_unavailable,  ///< the backend (e.g. Redis) is not connected; retried in the background
    timeout,              ///< the backend did not answer within the configured timeout
    bad_reply,            ///< the backend answered with a reply of an unexpected type or shape
    corrupt_record,       ///< a stored value could not be decoded as a session record
    backend_error,        ///< the backend answered with an error (e.g. Redis WRONGTYPE, OOM)
    store_closed,         ///< the store was shut down before the operation completed
    event_too_large,      ///< event_queue_store: one event exceeds the queue's byte limit
    invalid_node_id,      ///< event_queue_store: the node id is empty or longer than 64 bytes
    invalid_queue_limits, ///< event_queue_store: a limit is zero or a duration not positive
};

class session_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse.session"; }

    std::string message(int ev) const override {
        switch (static_cast<session_errc>(ev)) {
        case session_errc::not_found: return "session not found";
        case session_errc::expired: return "session expired";
        case session_errc::revoked: return "session revoked";
        case session_errc::already_exists: return "a session with this id already exists";
        case session_errc::invalid_session_id: return "session id is not GUID text (8-4-4-4-12)";
        case session_errc::invalid_account_id: return "account id is empty or too long";
        case session_errc::token_invalid: return "reconnection token is malformed, unknown or expired";
        case session_errc::token_consumed: return "reconnection token was already used";
        case session_errc::invalid_window: return "reconnection window is not positive or exceeds the maximum";
        case session_errc::too_many_attributes: return "too many session attributes";
        case session_errc::attribute_too_large: return "session attribute key or value too large";
        case session_errc::record_too_large: return "session roles, permissions or node id exceed their limits";
        case session_errc::backend_unavailable: return "session backend unavailable (reconnecting)";
        case session_errc::timeout: return "session backend did not answer in time";
        case session_errc::bad_reply: return "session backend reply has an unexpected type";
        case session_errc::corrupt_record: return "stored session record cannot be decoded";
        case session_errc::backend_error: return "session backend answered with an error";
        case session_errc::store_closed: return "session store was shut down";
        case session_errc::event_too_large: return "event exceeds the queue's byte limit";
        case session_errc::invalid_node_id: return "node id is empty or longer than 64 bytes";
        case session_errc::invalid_queue_limits: return "event queue limits must be positive";
        }
        return "unknown gatehouse.session error";
    }
};

inline const std::error_category& session_category() noexcept {
    static const session_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(session_errc e) noexcept {
    return {static_cast<int>(e), session_category()};
}

}  // namespace gatehouse::session

template <>
struct std::is_error_code_enum<gatehouse::session::session_errc> : std::true_type {};
