// Errors of the native client.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::client {

enum class client_errc {
    manifest_not_json = 1,      ///< the manifest payload is not a JSON object
    manifest_wrong_event,       ///< eventName is not connect.capability-manifest
    manifest_missing_apis,      ///< availableApis is absent or not an array
    manifest_bad_session_id,    ///< sessionId is missing or not a GUID
    unknown_endpoint,           ///< no endpoint of that path in the current manifest
    call_timeout,               ///< no response within the call's timeout
    call_cancelled,             ///< the connection closed or the client is shutting down
    duplicate_message_id,       ///< a call with this message id is already pending
    too_many_pending_calls,     ///< the pending-call limit is reached
};

class client_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse.client"; }
    std::string message(int ev) const override {
        switch (static_cast<client_errc>(ev)) {
        case client_errc::manifest_not_json: return "capability manifest is not a JSON object";
        case client_errc::manifest_wrong_event: return "event is not connect.capability-manifest";
        case client_errc::manifest_missing_apis: return "capability manifest has no availableApis array";
        case client_errc::manifest_bad_session_id: return "capability manifest has no valid sessionId";
        case client_errc::unknown_endpoint: return "endpoint is not in the current capability manifest";
        case client_errc::call_timeout: return "no response within the call's timeout";
        case client_errc::call_cancelled: return "call cancelled: connection closed or client stopping";
        case client_errc::duplicate_message_id: return "a call with this message id is already pending";
        case client_errc::too_many_pending_calls: return "too many calls pending on this connection";
        }
        return "unknown gatehouse.client error";
    }
};

inline const std::error_category& client_category() noexcept {
    static const client_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(client_errc e) noexcept { return {static_cast<int>(e), client_category()}; }

}  // namespace gatehouse::client

template <>
struct std::is_error_code_enum<gatehouse::client::client_errc> : std::true_type {};
