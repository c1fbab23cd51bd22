// Access to tests/data/protocol.json (a copy of ../shared/vectors/protocol.json)
// and small helpers to turn its hex strings into bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::test {

inline const nlohmann::json& vectors() {
    static const nlohmann::json doc = [] {
        const std::string path = std::string(GATEHOUSE_TEST_DATA_DIR) + "/protocol.json";
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot open " + path);
        return nlohmann::json::parse(in);
    }();
    return doc;
}

inline std::vector<std::uint8_t> from_hex(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        throw std::invalid_argument("bad hex digit in test vector");
    };
    std::vector<std::uint8_t> out;
    std::size_t i = 0;
    while (i < hex.size()) {
        if (hex[i] == ' ') { ++i; continue; }
        if (i + 1 >= hex.size()) throw std::invalid_argument("odd hex length in test vector");
        out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
        i += 2;
    }
    return out;
}

template <class Bytes>
std::string to_hex(const Bytes& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (auto b : bytes) {
        const auto v = static_cast<std::uint8_t>(b);
        s.push_back(digits[v >> 4]);
        s.push_back(digits[v & 0x0f]);
    }
    return s;
}

/// Vector integers are written as decimal ("999") or hex ("0x3e7") strings.
inline std::uint64_t parse_u64(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    const std::string s = v.get<std::string>();
    if (s.rfind("0x", 0) == 0) return std::stoull(s.substr(2), nullptr, 16);
    return std::stoull(s, nullptr, 10);
}

}  // namespace gatehouse::test
