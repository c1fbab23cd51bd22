// Strict base64url (RFC 4648 §5, no padding) as compact JWS requires
// (RFC 7515 §2): every string has exactly one accepted spelling.
#pragma once

#include <gatehouse/auth/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::auth::detail {

/// 0..63 for an alphabet character, 64 for '=', 255 for anything else.
inline std::uint8_t base64url_value(char c) noexcept {
    static constexpr auto table = [] {
        struct t { std::uint8_t v[256]; } r{};
        for (auto& x : r.v) x = 255;
        const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (std::uint8_t i = 0; i < 64; ++i) r.v[static_cast<unsigned char>(alphabet[i])] = i;
        r.v[static_cast<unsigned char>('=')] = 64;
        return r;
    }();
    return table.v[static_cast<unsigned char>(c)];
}

inline std::size_t base64url_decoded_size(std::size_t encoded) noexcept {
    return encoded / 4 * 3 + (encoded % 4 == 0 ? 0 : encoded % 4 - 1);
}

/// Decodes `in` into `out` (which must hold base64url_decoded_size(in.size())
/// bytes); returns the error of the first problem found.
inline std::error_code base64url_decode(std::string_view in, std::uint8_t* out) noexcept {
    for (const char c : in) {
        const auto v = base64url_value(c);
        if (v == 64) return auth_errc::base64url_padding;
        if (v == 255) return auth_errc::base64url_invalid_character;
    }
    if (in.size() % 4 == 1) return auth_errc::base64url_bad_length;
    std::size_t i = 0;
    std::size_t o = 0;
    for (; i + 4 <= in.size(); i += 4) {
        const std::uint32_t n = std::uint32_t{base64url_value(in[i])} << 18 | std::uint32_t{base64url_value(in[i + 1])} << 12 |
                                std::uint32_t{base64url_value(in[i + 2])} << 6 | std::uint32_t{base64url_value(in[i + 3])};
        out[o++] = static_cast<std::uint8_t>(n >> 16);
        out[o++] = static_cast<std::uint8_t>(n >> 8);
        out[o++] = static_cast<std::uint8_t>(n);
    }
    const std::size_t rest = in.size() - i;
    if (rest == 2) {
        const std::uint8_t a = base64url_value(in[i]);
        const std::uint8_t b = base64url_value(in[i + 1]);
        if ((b & 0x0f) != 0) return auth_errc::base64url_noncanonical;
        out[o] = static_cast<std::uint8_t>(a << 2 | b >> 4);
    } else if (rest == 3) {
        const std::uint8_t a = base64url_value(in[i]);
        const std::uint8_t b = base64url_value(in[i + 1]);
        const std::uint8_t c = base64url_value(in[i + 2]);
        if ((c & 0x03) != 0) return auth_errc::base64url_noncanonical;
        out[o] = static_cast<std::uint8_t>(a << 2 | b >> 4);
        out[o + 1] = static_cast<std::uint8_t>((b & 0x0f) << 4 | c >> 2);
    }
    return {};
}

/// Decodes into a string (resized to fit). `out` is cleared on error.
inline std::error_code base64url_decode(std::string_view in, std::string& out) {
    out.resize(base64url_decoded_size(in.size()));
    const auto ec = base64url_decode(in, reinterpret_cast<std::uint8_t*>(out.data()));
    if (ec) out.clear();
    return ec;
}

inline void base64url_encode(const std::uint8_t* data, std::size_t size, std::string& out) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    out.reserve(out.size() + (size * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        const std::uint32_t n = std::uint32_t{data[i]} << 16 | std::uint32_t{data[i + 1]} << 8 | data[i + 2];
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += alphabet[n >> 6 & 63];
        out += alphabet[n & 63];
    }
    if (size - i == 1) {
        const std::uint32_t n = std::uint32_t{data[i]} << 16;
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
    } else if (size - i == 2) {
        const std::uint32_t n = std::uint32_t{data[i]} << 16 | std::uint32_t{data[i + 1]} << 8;
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += alphabet[n >> 6 & 63];
    }
}

inline std::string base64url_encode(std::string_view data) {
    std::string out;
    base64url_encode(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), out);
    return out;
}

}  // namespace gatehouse::auth::detail
