#include <gatehouse/protocol.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace p = gatehouse::protocol;

TEST_CASE("flags: operators and helpers") {
    using f = p::message_flags;
    constexpr auto combo = f::event | f::binary;
    static_assert(p::to_byte(combo) == 0x11, "");
    static_assert(p::has_flags(combo, f::event), "");
    static_assert(!p::has_flags(combo, f::meta), "");
    static_assert(!p::has_flags(combo, f::none), "none is never 'set'");
    static_assert(p::to_byte(~f::response) == 0xbf, "");
    static_assert(p::to_byte(p::reserved_flags) == 0x0a, "");
    auto x = f::none;
    x |= f::meta;
    x &= f::meta | f::client;
    CHECK(x == f::meta);
    CHECK((combo ^ f::binary) == f::event);
    CHECK(p::flag_name(f::none).empty());
    CHECK(p::flag_name(combo).empty());
    CHECK(p::is_response(f::response | f::event));
    CHECK_FALSE(p::is_response(f::event));
}

TEST_CASE("response codes: unknown values are representable and reported as unknown") {
    for (int v : {1, 9, 15, 33, 100, 255}) {
        CHECK_FALSE(p::is_known_response_code(static_cast<std::uint8_t>(v)));
        CHECK(p::response_code_name(static_cast<p::response_code>(v)).empty());
        CHECK(p::to_http_status(static_cast<p::response_code>(v)) == 500);
    }
    CHECK(p::to_http_status(p::response_code::text_protocol_not_supported) == 500);
}

TEST_CASE("protocol errors: every code has its own message in the gatehouse.protocol category") {
    std::set<std::string> messages;
    int count = 0;
    for (int v = static_cast<int>(p::protocol_errc::empty_frame); v <= static_cast<int>(p::protocol_errc::guid_urn);
         ++v) {
        const std::error_code ec = static_cast<p::protocol_errc>(v);
        CHECK(ec);
        CHECK(std::string(ec.category().name()) == "gatehouse.protocol");
        messages.insert(ec.message());
        ++count;
    }
    CHECK(messages.size() == static_cast<std::size_t>(count));
    CHECK(std::error_code(999, p::protocol_category()).message() == "unknown gatehouse.protocol error");
}

TEST_CASE("meta: unknown channels mean endpoint info") {
    static_assert(p::meta_type_from_channel(3) == p::meta_type::full_schema, "");
    static_assert(p::meta_type_from_channel(4) == p::meta_type::endpoint_info, "");
    CHECK(p::meta_type_name(p::meta_type::request_schema) == "request-schema");
}

TEST_CASE("bytes_view: views of common containers") {
    std::vector<std::uint8_t> v{1, 2, 3};
    std::string s = "abc";
    std::array<unsigned char, 2> a{9, 8};
    p::bytes_view bv(v), bs(s), ba(a), bsv(std::string_view("xy"));
    CHECK(bv.size() == 3);
    CHECK(bs.as_chars() == "abc");
    CHECK(ba[1] == 8);
    CHECK(bsv.size() == 2);
    CHECK(bv.subview(1).size() == 2);
    CHECK(bv.subview(5).empty());
    CHECK(bv.subview(1, 1)[0] == 2);
    CHECK(bv.subview(2, 100).size() == 1);
}
