// Implementation of gatehouse/session/session.hpp.
#pragma once

#include <gatehouse/session/session.hpp>

#include <gatehouse/detail/random.hpp>

#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace gatehouse::session {

namespace detail {
// Session ids and reconnection tokens are drawn straight from the library's
// random source (gatehouse/detail/random.hpp); without it none is issued
// (gatehouse::random_unavailable).
using gatehouse::detail::random_bytes;

inline bool is_base64_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}
}  // namespace detail

GATEHOUSE_DECL bool is_session_id(std::string_view id) noexcept {
    if (id.size() != 36) return false;
    for (std::size_t i = 0; i < id.size(); ++i) {
        const char c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

GATEHOUSE_DECL std::error_code validate_record(const session_record& r, const session_limits& limits) noexcept {
    if (!r.session_id.empty() && !is_session_id(r.session_id)) return session_errc::invalid_session_id;
    if (r.account_id.empty() || r.account_id.size() > limits.max_account_id_size)
        return session_errc::invalid_account_id;
    if (r.roles.size() > limits.max_roles || r.permissions.size() > limits.max_permissions ||
        r.node_id.size() > limits.max_name_size)
        return session_errc::record_too_large;
    for (const auto& role : r.roles)
        if (role.size() > limits.max_name_size) return session_errc::record_too_large;
    for (const auto& permission : r.permissions)
        if (permission.size() > limits.max_name_size) return session_errc::record_too_large;
    if (r.attributes.size() > limits.max_attributes) return session_errc::too_many_attributes;
    for (const auto& [key, value] : r.attributes)
        if (key.empty() || key.size() > limits.max_attribute_key_size ||
            value.size() > limits.max_attribute_value_size)
            return session_errc::attribute_too_large;
    return {};
}

GATEHOUSE_DECL std::string random_session_id() {
    std::array<unsigned char, 16> b{};
    detail::random_bytes(b.data(), b.size());
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(36);
    for (std::size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
        s.push_back(digits[b[i] >> 4]);
        s.push_back(digits[b[i] & 0x0f]);
    }
    return s;
}

GATEHOUSE_DECL std::string random_reconnect_token() {
    std::array<unsigned char, 32> b{};
    detail::random_bytes(b.data(), b.size());
    std::string out(reconnect_token_size + 1, '\0');  // EVP_EncodeBlock writes a NUL
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), b.data(), static_cast<int>(b.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

GATEHOUSE_DECL bool is_reconnect_token(std::string_view token) noexcept {
    // 32 bytes encode to 43 characters and one '=' of padding.
    if (token.size() != reconnect_token_size || token.back() != '=') return false;
    for (std::size_t i = 0; i + 1 < token.size(); ++i)
        if (!detail::is_base64_char(token[i])) return false;
    return true;
}

GATEHOUSE_DECL std::string reconnect_token_hash(std::string_view token) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    std::memset(digest, 0, sizeof digest);
    EVP_Digest(token.data(), token.size(), digest, &digest_size, EVP_sha256(), nullptr);
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex(64, '0');
    for (std::size_t i = 0; i < 32; ++i) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0x0f];
    }
    return hex;
}

}  // namespace gatehouse::session
