// API keys: stored hashed, looked up in constant time, added and revoked at
// run time, with expiry.
#include <gatehouse/auth/api_key_validator.hpp>

#include <doctest/doctest.h>

namespace a = gatehouse::auth;
using gatehouse::auth::auth_errc;
using std::chrono::seconds;

namespace {
a::identity service(const char* name) {
    a::identity id;
    id.subject = name;
    id.roles = {"service"};
    id.permissions = {"push:any"};
    return id;
}
}  // namespace

TEST_CASE("api keys: SHA-256 hashes, hex form") {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    const auto h = a::hash_api_key("abc");
    REQUIRE(h);
    CHECK(a::to_hex(*h) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(a::parse_api_key_hash("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD") == h);
    CHECK_FALSE(a::parse_api_key_hash("ba7816bf"));
    CHECK_FALSE(a::parse_api_key_hash(std::string(63, 'a') + "g"));
}

TEST_CASE("api keys: add, validate, revoke, expire") {
    a::manual_clock clock;
    a::api_key_options o;
    o.clock = clock.source();
    a::api_key_validator v(o);
    REQUIRE_FALSE(v.add("key-alpha-0123456789", service("billing")));
    auto expiring = service("reports");
    expiring.expires_at = clock.now() + seconds(60);
    REQUIRE_FALSE(v.add("key-beta-0123456789", expiring));
    // Pre-hashed, as loaded from a configuration file.
    v.add_hash(*a::parse_api_key_hash(a::to_hex(*a::hash_api_key("key-gamma"))), service("matchmaker"));
    CHECK(v.size() == 3);

    a::identity id;
    REQUIRE_FALSE(v.validate("key-alpha-0123456789", id));
    CHECK(id.subject == "billing");
    CHECK(id.has_role("service"));
    CHECK(id.has_permission("push:any"));
    REQUIRE_FALSE(v.validate(a::credential{a::credential_kind::api_key, "key-gamma"}, id));
    CHECK(id.subject == "matchmaker");

    a::identity untouched;
    untouched.subject = "untouched";
    CHECK(v.validate("key-alpha-012345678", untouched) == auth_errc::unknown_api_key);  // one byte short
    CHECK(v.validate("key-alpha-01234567890", untouched) == auth_errc::unknown_api_key);
    CHECK(v.validate("", untouched) == auth_errc::empty_credential);
    CHECK(v.validate(std::string(257, 'k'), untouched) == auth_errc::api_key_too_large);
    CHECK(v.validate("key alpha", untouched) == auth_errc::malformed_credential);
    CHECK(v.validate(a::credential{a::credential_kind::bearer, "key-gamma"}, untouched) ==
          auth_errc::unsupported_credential_kind);
    CHECK(untouched.subject == "untouched");

    clock.advance(seconds(59));
    CHECK_FALSE(v.validate("key-beta-0123456789", id));
    clock.advance(seconds(1));
    CHECK(v.validate("key-beta-0123456789", id) == auth_errc::api_key_expired);

    CHECK(v.revoke("key-alpha-0123456789"));
    CHECK_FALSE(v.revoke("key-alpha-0123456789"));
    CHECK(v.validate("key-alpha-0123456789", id) == auth_errc::unknown_api_key);
    CHECK(v.revoke_hash(*a::hash_api_key("key-gamma")));
    CHECK(v.size() == 1);

    // Re-adding a key replaces its identity.
    REQUIRE_FALSE(v.add("key-beta-0123456789", service("reports-v2")));
    REQUIRE_FALSE(v.validate("key-beta-0123456789", id));
    CHECK(id.subject == "reports-v2");

    CHECK(v.add("", service("x")) == auth_errc::empty_credential);
    CHECK(v.add(std::string(257, 'k'), service("x")) == auth_errc::api_key_too_large);
    CHECK(v.add("has space", service("x")) == auth_errc::malformed_credential);

    bool called = false;
    v.async_validate({a::credential_kind::api_key, "key-beta-0123456789"}, [&](std::error_code ec, a::identity got) {
        called = true;
        CHECK_FALSE(ec);
        CHECK(got.subject == "reports-v2");
    });
    CHECK(called);
    CHECK_THROWS_AS(a::api_key_validator(a::api_key_options{0, a::system_time()}), std::invalid_argument);
}

TEST_CASE("api keys: a registered expiry_leeway extends acceptance to expires_at + leeway, and is passed on") {
    a::manual_clock clock;
    a::api_key_options o;
    o.clock = clock.source();
    a::api_key_validator v(o);
    auto id = service("reports");
    id.expires_at = clock.now() + seconds(60);
    id.expiry_leeway = seconds(10);
    REQUIRE_FALSE(v.add("key-delta-0123456789", id));
    a::identity got;
    clock.advance(seconds(69));
    REQUIRE_FALSE(v.validate("key-delta-0123456789", got));
    CHECK(got.expiry_leeway == seconds(10));
    CHECK(got.valid_until() == *id.expires_at + seconds(10));
    clock.advance(seconds(1));
    CHECK(v.validate("key-delta-0123456789", got) == auth_errc::api_key_expired);
}
