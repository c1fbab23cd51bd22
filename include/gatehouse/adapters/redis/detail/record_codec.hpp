// The value stored under a session's record key. Text-safe and parseable from
// Lua where the scripts need it (account id, creation time, the reconnection
// segment), so that revocation, lifetime checks and token handling run
// atomically inside Redis:
//
//   "G1" hex8(n) reconnect immutable(n bytes) mutable
//   reconnect = dec16(token expiry ms) dec16(last activity ms when issued)
//               hex64(SHA-256 of the token)   -- all '0' when no token
//   immutable = hex4(len) account_id hex16(created_at_ms)
//   mutable   = hex16(token_expires_at_ms) str(node_id)
//               hex4(count) str(role)...  hex4(count) str(permission)...
//               hex4(count) (str(key) str(value))...
//   str(x)    = hex4(len) x
//
// "R" alone is the tombstone of a revoked session. Every length is bounded by
// session_limits, all far below 0xffff.
#pragma once

#include <gatehouse/session/session.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::adapters::redis::detail {

inline constexpr std::string_view record_magic = "G1";
inline constexpr std::string_view revoked_tombstone = "R";
inline constexpr std::size_t record_header_size = 10;     // magic + hex8
inline constexpr std::size_t reconnect_segment_size = 96;  // dec16 dec16 hex64

inline void put_hex(std::string& out, std::uint64_t v, int digits) {
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i) out.push_back(hex[(v >> (4 * i)) & 0xf]);
}

inline void put_str(std::string& out, std::string_view s) {
    put_hex(out, s.size(), 4);
    out.append(s);
}

inline std::uint64_t to_ms(session::time_point t) noexcept {
    const auto c = t.time_since_epoch().count();
    return c < 0 ? 0 : static_cast<std::uint64_t>(c);
}

inline session::time_point from_ms(std::uint64_t ms) noexcept {
    return session::time_point(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
}

/// The part of the record update() replaces.
inline std::string encode_mutable(const session::session_record& r) {
    std::string out;
    put_hex(out, to_ms(r.token_expires_at), 16);
    put_str(out, r.node_id);
    put_hex(out, r.roles.size(), 4);
    for (const auto& role : r.roles) put_str(out, role);
    put_hex(out, r.permissions.size(), 4);
    for (const auto& p : r.permissions) put_str(out, p);
    put_hex(out, r.attributes.size(), 4);
    for (const auto& [k, v] : r.attributes) {
        put_str(out, k);
        put_str(out, v);
    }
    return out;
}

inline std::string encode_record(const session::session_record& r) {
    std::string immutable;
    put_str(immutable, r.account_id);
    put_hex(immutable, to_ms(r.created_at), 16);
    std::string out(record_magic);
    put_hex(out, immutable.size(), 8);
    out.append(reconnect_segment_size, '0');
    out += immutable;
    out += encode_mutable(r);
    return out;
}

/// Value of each lowercase hex digit; 0x80 marks every other byte.
inline constexpr std::array<unsigned char, 256> hex_digit_values = [] {
    std::array<unsigned char, 256> table{};
    for (auto& v : table) v = 0x80;
    for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = static_cast<unsigned char>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) table[static_cast<std::size_t>(c)] = static_cast<unsigned char>(c - 'a' + 10);
    return table;
}();

class record_reader {
public:
    explicit record_reader(std::string_view in) noexcept : in_(in) {}

    bool hex(int digits, std::uint64_t& v) noexcept {
        if (in_.size() - pos_ < static_cast<std::size_t>(digits)) return false;
        // Records are decoded on every load: a table, and one check for the
        // whole field (an invalid digit sets the high bit), instead of a
        // branch per digit.
        std::uint64_t value = 0;
        unsigned invalid = 0;
        const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos_);
        for (int i = 0; i < digits; ++i) {
            const unsigned d = hex_digit_values[p[i]];
            invalid |= d;
            value = (value << 4) | (d & 0xf);
        }
        if (invalid & 0x80) return false;
        pos_ += static_cast<std::size_t>(digits);
        v = value;
        return true;
    }

    bool decimal(int digits, std::uint64_t& v) noexcept {
        if (in_.size() - pos_ < static_cast<std::size_t>(digits)) return false;
        v = 0;
        for (int i = 0; i < digits; ++i) {
            const char c = in_[pos_++];
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return true;
    }

    bool skip_hex(int digits) noexcept {
        std::uint64_t ignored = 0;
        for (int i = 0; i < digits; i += 16)
            if (!hex(std::min(16, digits - i), ignored)) return false;
        return true;
    }

    bool str(std::string& s) noexcept {
        std::uint64_t n = 0;
        if (!hex(4, n) || in_.size() - pos_ < n) return false;
        s.assign(in_.substr(pos_, n));
        pos_ += n;
        return true;
    }

    bool literal(std::string_view s) noexcept {
        if (in_.substr(pos_, s.size()) != s) return false;
        pos_ += s.size();
        return true;
    }

    std::size_t position() const noexcept { return pos_; }
    bool at_end() const noexcept { return pos_ == in_.size(); }

private:
    std::string_view in_;
    std::size_t pos_ = 0;
};

/// The reconnection segment of a stored record.
struct reconnect_segment {
    std::uint64_t expires_ms = 0;       // 0: no token outstanding
    std::uint64_t last_activity_ms = 0; // last activity when the token was issued
};

/// Decodes a stored record (not the tombstone). False when malformed; the
/// store fields last_activity and expires_at are left for the caller, which
/// reads them from the activity key.
inline bool decode_record(std::string_view blob, session::session_record& r, reconnect_segment& reconnect) {
    record_reader in(blob);
    std::uint64_t immutable_size = 0, created = 0, token_expires = 0, count = 0;
    if (!in.literal(record_magic) || !in.hex(8, immutable_size)) return false;
    if (!in.decimal(16, reconnect.expires_ms) || !in.decimal(16, reconnect.last_activity_ms) ||
        !in.skip_hex(64))
        return false;
    if (!in.str(r.account_id) || !in.hex(16, created)) return false;
    if (in.position() != record_header_size + reconnect_segment_size + immutable_size) return false;
    r.reconnect_expires_at = reconnect.expires_ms ? from_ms(reconnect.expires_ms) : session::time_point{};
    r.created_at = from_ms(created);
    if (!in.hex(16, token_expires) || !in.str(r.node_id)) return false;
    r.token_expires_at = from_ms(token_expires);
    if (!in.hex(4, count)) return false;
    r.roles.resize(count);
    for (auto& role : r.roles)
        if (!in.str(role)) return false;
    if (!in.hex(4, count)) return false;
    r.permissions.resize(count);
    for (auto& p : r.permissions)
        if (!in.str(p)) return false;
    if (!in.hex(4, count)) return false;
    r.attributes.clear();
    for (std::uint64_t i = 0; i < count; ++i) {
        std::string k, v;
        if (!in.str(k) || !in.str(v)) return false;
        r.attributes.emplace(std::move(k), std::move(v));
    }
    return in.at_end() && !r.account_id.empty();
}

/// Parses a decimal millisecond count (the activity key's value).
inline bool parse_ms(std::string_view s, std::uint64_t& v) noexcept {
    if (s.empty() || s.size() > 19) return false;
    v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
}

}  // namespace gatehouse::adapters::redis::detail
