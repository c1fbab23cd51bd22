// Parsing the value of an HTTP Authorization header (PROTOCOL.md §2.3, §18)
// into a credential. Peer-controlled input: bounded, never throws.
#pragma once

#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/token_validator.hpp>

#include <cstddef>
#include <string_view>
#include <system_error>

namespace gatehouse::auth {

struct authorization_header_options {
    /// Longest header value accepted, in bytes (scheme included).
    std::size_t max_size = 16 * 1024;
    /// Accept the ApiKey scheme. A gateway without API keys turns it off so
    /// that such a header is reported as an unknown scheme.
    bool accept_api_key = true;
};

namespace detail {
inline bool is_header_space(char c) noexcept { return c == ' ' || c == '\t'; }
inline bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}
}  // namespace detail

/// Splits `value` ("Bearer x", "ApiKey x", "Reconnect x") into a credential.
/// The scheme is compared case-insensitively (RFC 7235); spaces and tabs
/// around the credential are trimmed. Errors:
/// - missing_credentials: empty or whitespace-only value;
/// - empty_credential: a known scheme with nothing after it;
/// - unknown_scheme: any other scheme (Basic, Internal, a bare token, ...);
/// - credential_too_large: longer than options.max_size;
/// - malformed_credential: a space, tab or control character inside the
///   credential (no token of any kind contains one).
/// On error `out` is left unchanged.
inline std::error_code parse_authorization_header(std::string_view value, credential& out,
                                                  const authorization_header_options& options = {}) {
    if (value.size() > options.max_size) return auth_errc::credential_too_large;
    std::size_t begin = 0;
    std::size_t end = value.size();
    while (begin < end && detail::is_header_space(value[begin])) ++begin;
    while (end > begin && detail::is_header_space(value[end - 1])) --end;
    if (begin == end) return auth_errc::missing_credentials;

    std::size_t scheme_end = begin;
    while (scheme_end < end && !detail::is_header_space(value[scheme_end])) ++scheme_end;
    const std::string_view scheme = value.substr(begin, scheme_end - begin);

    credential_kind kind;
    if (detail::iequals_ascii(scheme, "bearer")) {
        kind = credential_kind::bearer;
    } else if (detail::iequals_ascii(scheme, "reconnect")) {
        kind = credential_kind::reconnect;
    } else if (options.accept_api_key && detail::iequals_ascii(scheme, "apikey")) {
        kind = credential_kind::api_key;
    } else {
        return auth_errc::unknown_scheme;
    }

    std::size_t token_begin = scheme_end;
    while (token_begin < end && detail::is_header_space(value[token_begin])) ++token_begin;
    if (token_begin == end) return auth_errc::empty_credential;
    const std::string_view token = value.substr(token_begin, end - token_begin);
    for (const char c : token) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return auth_errc::malformed_credential;
    }
    out.kind = kind;
    out.value.assign(token.data(), token.size());
    return {};
}

}  // namespace gatehouse::auth
