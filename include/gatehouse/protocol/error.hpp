// Errors of the protocol codec, as std::error_code values.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::protocol {

/// Why a frame, header or GUID could not be decoded or encoded. Zero is never
/// used: a default `std::error_code` means success.
enum class protocol_errc {
    empty_frame = 1,            ///< zero bytes: not even a flags byte
    truncated_request_header,   ///< Response bit clear and fewer than 31 bytes
    truncated_response_header,  ///< Response bit set and fewer than 16 bytes
    not_a_request,              ///< a request header was expected; the Response bit is set
    not_a_response,             ///< a response header was expected; the Response bit is clear
    buffer_too_small,           ///< the output buffer cannot hold the encoded header
    guid_empty,                 ///< GUID text is empty
    guid_bad_length,            ///< GUID text is neither 36 (8-4-4-4-12) nor 32 characters
    guid_bad_digit,             ///< GUID text has a character that is not a hex digit
    guid_bad_hyphens,           ///< 36 characters, but the hyphens are not at 8, 13, 18, 23
    guid_braced,                ///< "{...}" form; the protocol carries bare GUIDs only
    guid_urn,                   ///< "urn:uuid:..." form; the protocol carries bare GUIDs only
};

class protocol_category_impl final : public std::error_category {
public:
    constexpr protocol_category_impl() noexcept = default;

    const char* name() const noexcept override { return "gatehouse.protocol"; }

    std::string message(int ev) const override {
        switch (static_cast<protocol_errc>(ev)) {
        case protocol_errc::empty_frame: return "frame is empty: expected at least 1 byte";
        case protocol_errc::truncated_request_header:
            return "frame too short: expected at least 31 bytes for a request header";
        case protocol_errc::truncated_response_header:
            return "frame too short: expected at least 16 bytes for a response header";
        case protocol_errc::not_a_request: return "frame is a response (flag 0x40 set), not a request";
        case protocol_errc::not_a_response: return "frame is a request (flag 0x40 clear), not a response";
        case protocol_errc::buffer_too_small: return "output buffer too small for the header";
        case protocol_errc::guid_empty: return "GUID text is empty";
        case protocol_errc::guid_bad_length:
            return "GUID text must be 36 characters (8-4-4-4-12) or 32 hex digits";
        case protocol_errc::guid_bad_digit: return "GUID text contains a character that is not a hex digit";
        case protocol_errc::guid_bad_hyphens: return "GUID text has hyphens outside positions 8, 13, 18 and 23";
        case protocol_errc::guid_braced: return "braced GUID text is not accepted; send the bare 8-4-4-4-12 form";
        case protocol_errc::guid_urn: return "urn:uuid: GUID text is not accepted; send the bare 8-4-4-4-12 form";
        }
        return "unknown gatehouse.protocol error";
    }
};

namespace detail {
// Constant-initialized, so reaching it needs no function-local-static guard:
// the decoder builds an error_code in this category on every frame.
inline const protocol_category_impl protocol_category_instance{};
}  // namespace detail

inline const std::error_category& protocol_category() noexcept { return detail::protocol_category_instance; }

inline std::error_code make_error_code(protocol_errc e) noexcept {
    return {static_cast<int>(e), protocol_category()};
}

namespace detail {
/// Success (value 0) in the protocol category. A default-constructed
/// std::error_code calls std::system_category(), an out-of-line call into
/// the C++ runtime; the decoder's hot path avoids it. Both test false.
inline std::error_code success() noexcept { return {0, protocol_category()}; }
}  // namespace detail

}  // namespace gatehouse::protocol

template <>
struct std::is_error_code_enum<gatehouse::protocol::protocol_errc> : std::true_type {};
