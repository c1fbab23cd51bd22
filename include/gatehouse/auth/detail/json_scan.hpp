// A strict, allocation-free JSON (RFC 8259) validator that reports the
// members of a top-level object as raw text spans. Token validation reads
// only a handful of claims; building a full DOM for each token cost more
// than the signature check itself. It accepts exactly what nlohmann::json's
// parser accepts (the fuzz_jwt_json target checks this), so the lazily
// built DOM behind identity::claims always exists for a validated token.
//
// One deliberate difference: an object that repeats a member name ("sub"
// twice, or "sub" and "s\u0075b") is refused (duplicate_member) at any
// depth, where nlohmann keeps the last one. RFC 7519 §4 lets a JWT parser
// refuse duplicate claim names, and refusing is the only choice that keeps
// what validation reads and what the host reads through claim_set::json()
// the same. Detection allocates nothing: a fixed table of 32-bit name
// hashes lives in the scanner, and a hash match (or an object with more
// members than the table holds) is confirmed by re-reading the object's
// earlier members.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace gatehouse::auth::detail::json {

enum class kind : std::uint8_t { string, number, object, array, boolean, null };

/// A value as it appears in the text. For strings `raw` excludes the quotes
/// and `escaped` tells whether it contains backslash escapes.
struct value {
    kind type = kind::null;
    std::string_view raw;
    bool escaped = false;
};

enum class scan_result { ok, not_json, not_object, too_deep, duplicate_member };

/// The UTF-8 bytes of a validated string's raw contents, escapes resolved,
/// one at a time and without allocating.
class string_bytes {
public:
    explicit string_bytes(std::string_view raw) noexcept : p_(raw.data()), end_(raw.data() + raw.size()) {}

    bool next(unsigned char& c) noexcept {
        if (pos_ < len_) {
            c = buf_[pos_++];
            return true;
        }
        if (p_ == end_) return false;
        if (*p_ != '\\') {
            c = static_cast<unsigned char>(*p_++);
            return true;
        }
        ++p_;
        const char e = *p_++;
        switch (e) {
        case 'b': c = '\b'; return true;
        case 'f': c = '\f'; return true;
        case 'n': c = '\n'; return true;
        case 'r': c = '\r'; return true;
        case 't': c = '\t'; return true;
        case 'u': break;
        default: c = static_cast<unsigned char>(e); return true;  // '"', '\\', '/'
        }
        unsigned code = hex4(p_);
        p_ += 4;
        if (code >= 0xD800 && code <= 0xDBFF) {  // validated: a low surrogate follows
            code = 0x10000 + ((code - 0xD800) << 10) + (hex4(p_ + 2) - 0xDC00);
            p_ += 6;
        }
        len_ = encode(code);
        pos_ = 1;
        c = buf_[0];
        return true;
    }

private:
    static unsigned hex4(const char* s) noexcept {
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const char ch = s[k];
            v = v << 4 | static_cast<unsigned>(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
        }
        return v;
    }
    std::size_t encode(unsigned code) noexcept {
        if (code < 0x80) {
            buf_[0] = static_cast<unsigned char>(code);
            return 1;
        }
        if (code < 0x800) {
            buf_[0] = static_cast<unsigned char>(0xC0 | code >> 6);
            buf_[1] = static_cast<unsigned char>(0x80 | (code & 0x3F));
            return 2;
        }
        if (code < 0x10000) {
            buf_[0] = static_cast<unsigned char>(0xE0 | code >> 12);
            buf_[1] = static_cast<unsigned char>(0x80 | (code >> 6 & 0x3F));
            buf_[2] = static_cast<unsigned char>(0x80 | (code & 0x3F));
            return 3;
        }
        buf_[0] = static_cast<unsigned char>(0xF0 | code >> 18);
        buf_[1] = static_cast<unsigned char>(0x80 | (code >> 12 & 0x3F));
        buf_[2] = static_cast<unsigned char>(0x80 | (code >> 6 & 0x3F));
        buf_[3] = static_cast<unsigned char>(0x80 | (code & 0x3F));
        return 4;
    }

    const char* p_;
    const char* end_;
    unsigned char buf_[4] = {};
    std::size_t len_ = 0;
    std::size_t pos_ = 0;
};

/// Whether two validated strings' raw contents denote the same text.
inline bool same_string(std::string_view a, bool a_escaped, std::string_view b, bool b_escaped) noexcept {
    if (!a_escaped && !b_escaped) return a == b;
    string_bytes x(a_escaped ? a : std::string_view());
    string_bytes y(b_escaped ? b : std::string_view());
    std::size_t i = 0;
    std::size_t k = 0;
    for (;;) {
        unsigned char cx = 0;
        unsigned char cy = 0;
        const bool hx = a_escaped ? x.next(cx) : (i < a.size() && (cx = static_cast<unsigned char>(a[i++]), true));
        const bool hy = b_escaped ? y.next(cy) : (k < b.size() && (cy = static_cast<unsigned char>(b[k++]), true));
        if (hx != hy) return false;
        if (!hx) return true;
        if (cx != cy) return false;
    }
}

/// FNV-1a of a validated string's text, escapes resolved.
inline std::uint32_t string_hash(std::string_view raw, bool escaped) noexcept {
    std::uint32_t h = 2166136261u;
    if (!escaped) {
        for (const char c : raw) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
        return h;
    }
    string_bytes bytes(raw);
    unsigned char c = 0;
    while (bytes.next(c)) h = (h ^ c) * 16777619u;
    return h;
}

class scanner {
public:
    scanner(std::string_view text, std::size_t max_depth) noexcept
        : p_(text.data()), end_(text.data() + text.size()), max_depth_(max_depth) {}

    /// Validates the whole text; calls visit(key, key_escaped, value) for
    /// each member of the top-level object, in order. Members are reported
    /// as they are found, so a visitor may see some before a later syntax
    /// error or repeated name makes the result not_json or duplicate_member.
    template <class Visitor>
    scan_result top_object(Visitor&& visit) noexcept {
        skip_ws();
        if (p_ == end_) return scan_result::not_json;
        if (*p_ != '{') {
            value v;
            if (!parse_value(v, 0)) return failure();
            skip_ws();
            return p_ == end_ ? scan_result::not_object : scan_result::not_json;
        }
        if (max_depth_ < 1) return scan_result::too_deep;
        ++p_;
        object_names names{p_, name_count_};
        skip_ws();
        if (p_ != end_ && *p_ == '}') {
            ++p_;
        } else {
            for (;;) {
                skip_ws();
                std::string_view key;
                bool key_escaped = false;
                const char* key_start = p_;
                if (p_ == end_ || *p_ != '"' || !parse_string(key, key_escaped)) return failure();
                if (!unique_name(names, key_start, key, key_escaped)) return scan_result::duplicate_member;
                skip_ws();
                if (p_ == end_ || *p_ != ':') return scan_result::not_json;
                ++p_;
                skip_ws();
                value v;
                if (!parse_value(v, 1)) return failure();
                visit(key, key_escaped, v);
                skip_ws();
                if (p_ == end_) return scan_result::not_json;
                if (*p_ == ',') {
                    ++p_;
                    continue;
                }
                if (*p_ == '}') {
                    ++p_;
                    break;
                }
                return scan_result::not_json;
            }
        }
        skip_ws();
        return p_ == end_ ? scan_result::ok : scan_result::not_json;
    }

    /// Calls each(raw, escaped) for every element of an array whose raw text
    /// was validated before; returns false at the first non-string element.
    template <class Each>
    static bool string_elements(std::string_view array_raw, Each&& each) noexcept {
        scanner s(array_raw, 64);
        ++s.p_;  // '['
        s.skip_ws();
        if (s.p_ != s.end_ && *s.p_ == ']') return true;
        for (;;) {
            s.skip_ws();
            if (s.p_ == s.end_ || *s.p_ != '"') return false;
            std::string_view raw;
            bool escaped = false;
            if (!s.parse_string(raw, escaped)) return false;
            each(raw, escaped);
            s.skip_ws();
            if (s.p_ == s.end_ || *s.p_ != ',') return true;
            ++s.p_;
        }
    }

private:
    scan_result failure() const noexcept {
        return duplicate_ ? scan_result::duplicate_member : too_deep_ ? scan_result::too_deep : scan_result::not_json;
    }

    // The object being parsed: where its members begin, and where its
    // names start in names_. `incomplete` once a name did not fit.
    struct object_names {
        const char* begin;
        std::size_t base;
        bool incomplete = false;
    };

    // Checks the name just parsed (its opening quote at key_start) against
    // the earlier names of the same object, and records it. False (and
    // duplicate_ set) when it repeats one of them.
    bool unique_name(object_names& o, const char* key_start, std::string_view key, bool escaped) noexcept {
        if (!check_duplicates_) return true;
        const std::uint32_t h = string_hash(key, escaped);
        bool suspect = o.incomplete;
        for (std::size_t i = o.base; !suspect && i < name_count_; ++i) suspect = names_[i] == h;
        if (suspect && earlier_name(o.begin, key_start, key, escaped)) {
            duplicate_ = true;
            return false;
        }
        if (name_count_ < name_capacity) {
            names_[name_count_++] = h;
        } else {
            o.incomplete = true;
        }
        return true;
    }
    void end_object(const object_names& o) noexcept { name_count_ = o.base; }

    // Whether the members in [begin, end) of an object, validated already,
    // include the name `key`.
    bool earlier_name(const char* begin, const char* end, std::string_view key, bool escaped) const noexcept {
        scanner s(std::string_view(begin, static_cast<std::size_t>(end - begin)), static_cast<std::size_t>(-1));
        s.check_duplicates_ = false;
        for (;;) {
            s.skip_ws();
            if (s.p_ == s.end_) return false;
            if (*s.p_ == ',') {
                ++s.p_;
                continue;
            }
            std::string_view name;
            bool name_escaped = false;
            if (*s.p_ != '"' || !s.parse_string(name, name_escaped)) return false;
            if (same_string(name, name_escaped, key, escaped)) return true;
            s.skip_ws();
            if (s.p_ == s.end_ || *s.p_ != ':') return false;
            ++s.p_;
            s.skip_ws();
            value v;
            if (!s.parse_value(v, 0)) return false;
        }
    }

    void skip_ws() noexcept {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }

    bool literal(const char* word, std::size_t n) noexcept {
        if (static_cast<std::size_t>(end_ - p_) < n) return false;
        for (std::size_t i = 0; i < n; ++i)
            if (p_[i] != word[i]) return false;
        p_ += n;
        return true;
    }

    bool parse_value(value& v, std::size_t depth) noexcept {
        if (p_ == end_) return false;
        const char* start = p_;
        switch (*p_) {
        case '"':
            v.type = kind::string;
            return parse_string(v.raw, v.escaped);
        case '{':
        case '[': {
            if (depth + 1 > max_depth_) {
                too_deep_ = true;
                return false;
            }
            const bool is_object = *p_ == '{';
            const char close = is_object ? '}' : ']';
            ++p_;
            object_names names{p_, name_count_};
            skip_ws();
            if (p_ != end_ && *p_ == close) {
                ++p_;
            } else {
                for (;;) {
                    skip_ws();
                    if (is_object) {
                        std::string_view key;
                        bool escaped = false;
                        const char* key_start = p_;
                        if (p_ == end_ || *p_ != '"' || !parse_string(key, escaped)) return false;
                        if (!unique_name(names, key_start, key, escaped)) return false;
                        skip_ws();
                        if (p_ == end_ || *p_ != ':') return false;
                        ++p_;
                        skip_ws();
                    }
                    value inner;
                    if (!parse_value(inner, depth + 1)) return false;
                    skip_ws();
                    if (p_ == end_) return false;
                    if (*p_ == ',') {
                        ++p_;
                        continue;
                    }
                    if (*p_ == close) {
                        ++p_;
                        break;
                    }
                    return false;
                }
            }
            if (is_object) end_object(names);
            v.type = is_object ? kind::object : kind::array;
            v.raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
            return true;
        }
        case 't':
            v.type = kind::boolean;
            return literal("true", 4);
        case 'f':
            v.type = kind::boolean;
            return literal("false", 5);
        case 'n':
            v.type = kind::null;
            return literal("null", 4);
        default:
            v.type = kind::number;
            if (!parse_number()) return false;
            v.raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
            return true;
        }
    }

    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

    bool parse_number() noexcept {
        const char* start = p_;
        bool integral = true;
        if (p_ != end_ && *p_ == '-') ++p_;
        if (p_ == end_) return false;
        if (*p_ == '0') {
            ++p_;
        } else if (*p_ >= '1' && *p_ <= '9') {
            while (p_ != end_ && is_digit(*p_)) ++p_;
        } else {
            return false;
        }
        if (p_ != end_ && *p_ == '.') {
            integral = false;
            ++p_;
            if (p_ == end_ || !is_digit(*p_)) return false;
            while (p_ != end_ && is_digit(*p_)) ++p_;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            integral = false;
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ == end_ || !is_digit(*p_)) return false;
            while (p_ != end_ && is_digit(*p_)) ++p_;
        }
        // Like nlohmann: integers that fit 64 bits are exact; anything else
        // becomes a double and must be finite. Short integers cannot
        // overflow a double, so only the rare long or fractional numbers
        // pay for strtod.
        const std::size_t length = static_cast<std::size_t>(p_ - start);
        if (integral && length <= 20) return true;
        return std::isfinite(to_double(std::string_view(start, length)));
    }

public:
    /// strtod of a validated number token (C locale digits only).
    static double to_double(std::string_view number) noexcept {
        char small[64];
        std::string big;
        const char* text = nullptr;
        if (number.size() < sizeof small) {
            for (std::size_t i = 0; i < number.size(); ++i) small[i] = number[i];
            small[number.size()] = '\0';
            text = small;
        } else {
            try {
                big.assign(number.data(), number.size());
            } catch (...) {
                return HUGE_VAL;
            }
            text = big.c_str();
        }
        return std::strtod(text, nullptr);
    }

private:
    static int hex(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    bool read_u_escape(unsigned& code) noexcept {  // p_ after "\u"
        if (end_ - p_ < 4) return false;
        code = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = hex(p_[i]);
            if (h < 0) return false;
            code = code << 4 | static_cast<unsigned>(h);
        }
        p_ += 4;
        return true;
    }

    static bool cont(unsigned char c) noexcept { return c >= 0x80 && c <= 0xBF; }

    // p_ at the opening quote; on success p_ is past the closing quote.
    bool parse_string(std::string_view& inner, bool& escaped) noexcept {
        ++p_;
        const char* start = p_;
        escaped = false;
        while (p_ != end_) {
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                inner = std::string_view(start, static_cast<std::size_t>(p_ - start));
                ++p_;
                return true;
            }
            if (c < 0x20) return false;
            if (c == '\\') {
                escaped = true;
                ++p_;
                if (p_ == end_) return false;
                switch (*p_) {
                case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                    ++p_;
                    continue;
                case 'u': {
                    ++p_;
                    unsigned code = 0;
                    if (!read_u_escape(code)) return false;
                    if (code >= 0xDC00 && code <= 0xDFFF) return false;  // lone low surrogate
                    if (code >= 0xD800 && code <= 0xDBFF) {
                        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
                        p_ += 2;
                        unsigned low = 0;
                        if (!read_u_escape(low) || low < 0xDC00 || low > 0xDFFF) return false;
                    }
                    continue;
                }
                default:
                    return false;
                }
            }
            if (c < 0x80) {
                ++p_;
                continue;
            }
            // UTF-8, as RFC 3629 (and nlohmann) define it.
            const auto avail = end_ - p_;
            auto at = [this](int i) { return static_cast<unsigned char>(p_[i]); };
            if (c >= 0xC2 && c <= 0xDF) {
                if (avail < 2 || !cont(at(1))) return false;
                p_ += 2;
            } else if (c >= 0xE0 && c <= 0xEF) {
                if (avail < 3) return false;
                const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
                const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
                if (at(1) < lo || at(1) > hi || !cont(at(2))) return false;
                p_ += 3;
            } else if (c >= 0xF0 && c <= 0xF4) {
                if (avail < 4) return false;
                const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
                const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
                if (at(1) < lo || at(1) > hi || !cont(at(2)) || !cont(at(3))) return false;
                p_ += 4;
            } else {
                return false;
            }
        }
        return false;
    }

    // Hashes of the names of the objects being parsed, innermost last
    // (4 KiB: enough for every member of any token within the default size).
    static constexpr std::size_t name_capacity = 1024;

    const char* p_;
    const char* end_;
    std::size_t max_depth_;
    bool too_deep_ = false;
    bool duplicate_ = false;
    bool check_duplicates_ = true;
    std::size_t name_count_ = 0;
    std::uint32_t names_[name_capacity];
};

inline void append_utf8(unsigned code, std::string& out) {
    if (code < 0x80) {
        out += static_cast<char>(code);
    } else if (code < 0x800) {
        out += static_cast<char>(0xC0 | code >> 6);
        out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        out += static_cast<char>(0xE0 | code >> 12);
        out += static_cast<char>(0x80 | (code >> 6 & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | code >> 18);
        out += static_cast<char>(0x80 | (code >> 12 & 0x3F));
        out += static_cast<char>(0x80 | (code >> 6 & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
    }
}

/// The text of a validated string's raw contents, escapes resolved.
inline std::string unescape(std::string_view raw, bool escaped) {
    if (!escaped) return std::string(raw);
    std::string out;
    out.reserve(raw.size());
    auto hex4 = [&raw](std::size_t i) {
        unsigned v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char c = raw[i + k];
            v = v << 4 | static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        return v;
    };
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
            out += raw[i];
            continue;
        }
        const char e = raw[++i];
        switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
            unsigned code = hex4(i + 1);
            i += 4;
            if (code >= 0xD800 && code <= 0xDBFF) {
                const unsigned low = hex4(i + 3);
                i += 6;
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            append_utf8(code, out);
            break;
        }
        default: out += e; break;  // '"', '\\', '/'
        }
    }
    return out;
}

/// Compares a validated raw string with plain text without allocating in
/// the common (unescaped) case.
inline bool string_equals(std::string_view raw, bool escaped, std::string_view text) {
    return escaped ? unescape(raw, true) == text : raw == text;
}

}  // namespace gatehouse::auth::detail::json
