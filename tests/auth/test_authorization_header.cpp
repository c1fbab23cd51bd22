// parse_authorization_header: every scheme, trimming, and every error.
#include <gatehouse/auth/authorization_header.hpp>

#include <doctest/doctest.h>

#include <string>

namespace a = gatehouse::auth;

TEST_CASE("authorization header: the three schemes, any case, trimmed") {
    struct row {
        const char* header;
        a::credential_kind kind;
        const char* value;
    };
    const row rows[] = {
        {"Bearer abc.def.ghi", a::credential_kind::bearer, "abc.def.ghi"},
        {"bearer abc", a::credential_kind::bearer, "abc"},
        {"BEARER abc", a::credential_kind::bearer, "abc"},
        {"  Bearer   abc  ", a::credential_kind::bearer, "abc"},
        {"Bearer\tabc\t", a::credential_kind::bearer, "abc"},
        {"ApiKey k_123", a::credential_kind::api_key, "k_123"},
        {"apikey k_123", a::credential_kind::api_key, "k_123"},
        {"Reconnect  dGhpcyBpcyBhIHRva2Vu+/= ", a::credential_kind::reconnect, "dGhpcyBpcyBhIHRva2Vu+/="},
        {"RECONNECT x", a::credential_kind::reconnect, "x"},
    };
    for (const auto& r : rows) {
        INFO(r.header);
        a::credential c;
        REQUIRE_FALSE(a::parse_authorization_header(r.header, c));
        CHECK(c.kind == r.kind);
        CHECK(c.value == r.value);
    }
}

TEST_CASE("authorization header: every error, and the output left alone") {
    struct row {
        std::string header;
        a::auth_errc expected;
    };
    const row rows[] = {
        {"", a::auth_errc::missing_credentials},
        {"   \t ", a::auth_errc::missing_credentials},
        {"Bearer", a::auth_errc::empty_credential},
        {"Bearer    ", a::auth_errc::empty_credential},
        {"Reconnect", a::auth_errc::empty_credential},
        {"ApiKey \t", a::auth_errc::empty_credential},
        {"Basic dXNlcjpwYXNz", a::auth_errc::unknown_scheme},
        {"Internal", a::auth_errc::unknown_scheme},
        {"Bearerabc", a::auth_errc::unknown_scheme},
        {"eyJhbGciOiJIUzI1NiJ9.e30.sig", a::auth_errc::unknown_scheme},
        {"Bearer a b", a::auth_errc::malformed_credential},
        {std::string("Bearer a\x01") + "b", a::auth_errc::malformed_credential},
        {"Bearer a\x7f", a::auth_errc::malformed_credential},
        {"Bearer " + std::string(16 * 1024, 'x'), a::auth_errc::credential_too_large},
    };
    for (const auto& r : rows) {
        INFO(r.header.substr(0, 40));
        a::credential c{a::credential_kind::api_key, "unchanged"};
        CHECK(a::parse_authorization_header(r.header, c) == r.expected);
        CHECK(c.kind == a::credential_kind::api_key);
        CHECK(c.value == "unchanged");
    }
}

TEST_CASE("authorization header: ApiKey can be turned off, limits are configurable") {
    a::authorization_header_options no_api_keys;
    no_api_keys.accept_api_key = false;
    a::credential c;
    CHECK(a::parse_authorization_header("ApiKey abc", c, no_api_keys) == a::auth_errc::unknown_scheme);
    a::authorization_header_options small;
    small.max_size = 10;
    CHECK(a::parse_authorization_header("Bearer abc", c, small) == std::error_code{});
    CHECK(a::parse_authorization_header("Bearer abcd", c, small) == a::auth_errc::credential_too_large);
}
