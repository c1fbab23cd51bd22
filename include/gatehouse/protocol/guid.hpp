// GUIDs as the protocol carries them (PROTOCOL.md §3.3).
//
// The 16 bytes on the wire are the 32 hex digits of the canonical text form,
// in the order they are written ("text order", RFC 4122 network order). A
// `guid` stores exactly those bytes, so wire bytes, storage and text agree and
// nothing is ever byte-swapped. Never memcpy a Windows GUID or .NET Guid here.
#pragma once

#include <gatehouse/protocol/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::protocol {

struct guid {
    /// Wire order = text order.
    std::array<std::uint8_t, 16> bytes{};

    /// Length of the canonical text form, 8-4-4-4-12.
    static constexpr std::size_t text_size = 36;

    /// 00000000-0000-0000-0000-000000000000: the "system" GUID of server events.
    static constexpr guid nil() noexcept { return guid{}; }

    /// ffffffff-ffff-ffff-ffff-ffffffffffff: the broadcast target (§12.2).
    static constexpr guid broadcast() noexcept {
        guid g;
        for (auto& b : g.bytes) b = 0xff;
        return g;
    }

    /// The 16 bytes at `wire` (no validation is possible: any 16 bytes are a GUID).
    static guid from_wire(const std::uint8_t* wire) noexcept {
        guid g;
        std::memcpy(g.bytes.data(), wire, 16);
        return g;
    }

    constexpr bool is_nil() const noexcept {
        for (auto b : bytes)
            if (b != 0) return false;
        return true;
    }

    constexpr bool is_broadcast() const noexcept {
        for (auto b : bytes)
            if (b != 0xff) return false;
        return true;
    }

    /// Writes the 36-character lowercase 8-4-4-4-12 form to `out` (no NUL).
    constexpr void format_to(char* out) const noexcept {
        constexpr char digits[] = "0123456789abcdef";
        std::size_t o = 0;
        for (std::size_t i = 0; i < 16; ++i) {
            if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
            out[o++] = digits[bytes[i] >> 4];
            out[o++] = digits[bytes[i] & 0x0f];
        }
    }

    /// Lowercase 8-4-4-4-12 text.
    std::string to_string() const {
        std::string s(text_size, '\0');
        format_to(s.data());
        return s;
    }

    friend constexpr bool operator==(const guid& a, const guid& b) noexcept {
        for (std::size_t i = 0; i < 16; ++i)
            if (a.bytes[i] != b.bytes[i]) return false;
        return true;
    }
    friend constexpr bool operator!=(const guid& a, const guid& b) noexcept { return !(a == b); }
    friend constexpr bool operator<(const guid& a, const guid& b) noexcept {
        for (std::size_t i = 0; i < 16; ++i)
            if (a.bytes[i] != b.bytes[i]) return a.bytes[i] < b.bytes[i];
        return false;
    }
};

namespace detail {
constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

constexpr bool starts_with_nocase(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != prefix[i]) return false;
    }
    return true;
}
}  // namespace detail

/// Parses the 8-4-4-4-12 form or 32 bare hex digits, upper or lower case.
/// Anything else (braces, "urn:uuid:", other lengths, misplaced hyphens,
/// non-hex characters) leaves `out` untouched and returns a specific
/// `protocol_errc`.
inline std::error_code parse_guid(std::string_view text, guid& out) noexcept {
    if (text.empty()) return make_error_code(protocol_errc::guid_empty);
    if (text.front() == '{') return make_error_code(protocol_errc::guid_braced);
    if (detail::starts_with_nocase(text, "urn:uuid:")) return make_error_code(protocol_errc::guid_urn);

    const bool hyphenated = text.size() == 36;
    if (!hyphenated && text.size() != 32) return make_error_code(protocol_errc::guid_bad_length);

    guid g;
    std::size_t nibble = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool hyphen_slot = hyphenated && (i == 8 || i == 13 || i == 18 || i == 23);
        if (c == '-') {
            if (!hyphen_slot) return make_error_code(protocol_errc::guid_bad_hyphens);
            continue;
        }
        if (hyphen_slot) return make_error_code(protocol_errc::guid_bad_hyphens);
        const int v = detail::hex_value(c);
        if (v < 0) return make_error_code(protocol_errc::guid_bad_digit);
        auto& byte = g.bytes[nibble / 2];
        byte = static_cast<std::uint8_t>((nibble % 2 == 0) ? (v << 4) : (byte | v));
        ++nibble;
    }
    out = g;
    return {};
}

/// Parses as `parse_guid` does and throws `std::system_error` on bad text. For
/// configuration and tests; the message path uses `parse_guid`.
inline guid guid_from_string(std::string_view text) {
    guid g;
    if (auto ec = parse_guid(text, g)) throw std::system_error(ec);
    return g;
}

}  // namespace gatehouse::protocol

template <>
struct std::hash<gatehouse::protocol::guid> {
    std::size_t operator()(const gatehouse::protocol::guid& g) const noexcept {
        // GUIDs the gateway sees are SHA-256 derived or random: any 8 bytes are
        // already uniformly spread. Mix both halves so crafted GUIDs that share
        // a half do not all collide.
        std::uint64_t a = 0, b = 0;
        std::memcpy(&a, g.bytes.data(), 8);
        std::memcpy(&b, g.bytes.data() + 8, 8);
        const std::uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
        return static_cast<std::size_t>(h ^ (h >> 32));
    }
};
