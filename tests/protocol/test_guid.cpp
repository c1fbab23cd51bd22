#include <gatehouse/protocol/guid.hpp>

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <unordered_set>

namespace p = gatehouse::protocol;
using p::protocol_errc;

TEST_CASE("guid: both accepted forms, any case") {
    const auto a = p::guid_from_string("12345678-1234-5678-9abc-def012345678");
    CHECK(p::guid_from_string("12345678123456789abcdef012345678") == a);
    CHECK(p::guid_from_string("12345678-1234-5678-9ABC-DEF012345678") == a);
    CHECK(p::guid_from_string("12345678123456789ABCDEF012345678") == a);
    CHECK(a.to_string() == "12345678-1234-5678-9abc-def012345678");
}

TEST_CASE("guid: nil and broadcast") {
    CHECK(p::guid::nil().is_nil());
    CHECK(p::guid::nil().to_string() == "00000000-0000-0000-0000-000000000000");
    CHECK(p::guid::broadcast().is_broadcast());
    CHECK(p::guid::broadcast().to_string() == "ffffffff-ffff-ffff-ffff-ffffffffffff");
    CHECK_FALSE(p::guid::broadcast().is_nil());
    static_assert(p::guid::nil().is_nil(), "constexpr");
    static_assert(p::guid::broadcast().is_broadcast(), "constexpr");
}

TEST_CASE("guid: every malformed text gets its own error and leaves the output alone") {
    struct bad_case {
        std::string text;
        protocol_errc error;
    };
    const bad_case cases[] = {
        {"", protocol_errc::guid_empty},
        {"{12345678-1234-5678-9abc-def012345678}", protocol_errc::guid_braced},
        {"{12345678123456789abcdef012345678}", protocol_errc::guid_braced},
        {"urn:uuid:12345678-1234-5678-9abc-def012345678", protocol_errc::guid_urn},
        {"URN:UUID:12345678-1234-5678-9abc-def012345678", protocol_errc::guid_urn},
        {"invalid", protocol_errc::guid_bad_length},
        {"12345678-1234", protocol_errc::guid_bad_length},
        {"12345678-1234-5678-9abc-def01234567", protocol_errc::guid_bad_length},    // 35
        {"12345678-1234-5678-9abc-def0123456789", protocol_errc::guid_bad_length},  // 37
        {"12345678123456789abcdef01234567", protocol_errc::guid_bad_length},        // 31
        {"12345678123456789abcdef0123456789", protocol_errc::guid_bad_length},      // 33
        {"12345678-1234-5678-9abc-def01234567g", protocol_errc::guid_bad_digit},
        {"g2345678123456789abcdef012345678", protocol_errc::guid_bad_digit},
        {"12345678 1234 5678 9abc def012345678", protocol_errc::guid_bad_hyphens},
        {"123456781-234-5678-9abc-def012345678", protocol_errc::guid_bad_hyphens},
        {"12345678-1234-5678-9abcd-ef012345678", protocol_errc::guid_bad_hyphens},
        {"1234-5678123456789abcdef01234567", protocol_errc::guid_bad_hyphens},  // 32 chars with a hyphen
        {"12345678-1234-5678-9abc-def01234567\xff", protocol_errc::guid_bad_digit},
        {std::string("12345678-1234-5678-9abc-def01234567\0", 36), protocol_errc::guid_bad_digit},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        p::guid out = p::guid::broadcast();
        const auto ec = p::parse_guid(c.text, out);
        CHECK(ec == c.error);
        CHECK(ec.category() == p::protocol_category());
        CHECK_FALSE(ec.message().empty());
        CHECK(out.is_broadcast());
        CHECK_THROWS_AS(p::guid_from_string(c.text), std::system_error);
    }
}

TEST_CASE("guid: random round trips through text and wire") {
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2000; ++i) {
        p::guid g;
        for (auto& b : g.bytes) b = static_cast<std::uint8_t>(rng());
        p::guid back;
        REQUIRE_FALSE(p::parse_guid(g.to_string(), back));
        CHECK(back == g);
        CHECK(p::guid::from_wire(g.bytes.data()) == g);
    }
}

TEST_CASE("guid: ordering and hashing") {
    const auto a = p::guid_from_string("00000000-0000-0000-0000-000000000001");
    const auto b = p::guid_from_string("00000000-0000-0000-0000-000000000002");
    CHECK(a < b);
    CHECK_FALSE(b < a);
    CHECK(a != b);
    std::set<p::guid> ordered{b, a};
    CHECK(*ordered.begin() == a);

    std::unordered_set<p::guid> set;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 10000; ++i) {
        p::guid g;
        for (auto& x : g.bytes) x = static_cast<std::uint8_t>(rng());
        set.insert(g);
    }
    CHECK(set.size() == 10000);
    // GUIDs that differ only in one half still spread over buckets.
    std::unordered_set<std::size_t> hashes;
    for (int i = 0; i < 1000; ++i) {
        p::guid g;
        g.bytes[15] = static_cast<std::uint8_t>(i);
        g.bytes[14] = static_cast<std::uint8_t>(i >> 8);
        hashes.insert(std::hash<p::guid>{}(g));
    }
    CHECK(hashes.size() == 1000);
}
