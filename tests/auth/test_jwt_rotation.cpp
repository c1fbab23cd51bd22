// Key rotation: immediate replacement, grace periods, JWKS rotation that
// fails safely.
#include "auth_support.hpp"

#include <doctest/doctest.h>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;
using json = nlohmann::json;
using std::chrono::seconds;

namespace {

constexpr long long now_s = 1700000000;

struct rotation_fixture {
    a::manual_clock clock{std::chrono::system_clock::time_point(seconds(now_s))};
    a::signing_key_ptr old_signer = private_key("ec256.key.pem", "old");
    a::signing_key_ptr new_signer = private_key("ed25519.key.pem", "new");
    a::signing_key_ptr old_unnamed = private_key("ec256.key.pem", "");

    a::jwt_options options() const {
        a::jwt_options o;
        o.clock = clock.source();
        return o;
    }
    static std::string token(const a::signing_key& key, A alg) {
        std::string t;
        REQUIRE_FALSE(a::sign_jwt(json{{"sub", "a"}, {"session_key", "s"}, {"exp", now_s + 100000}}, key, alg, t));
        return t;
    }
};

}  // namespace

TEST_CASE("rotation: set_keys replaces at once; rotate_keys keeps the previous set for the grace period") {
    rotation_fixture f;
    a::jwt_validator v(f.options(), make_set({pem_key("ec256.pub.pem", "old")}));
    const auto old_token = f.token(*f.old_signer, A::es256);
    const auto old_token_no_kid = f.token(*f.old_unnamed, A::es256);
    const auto new_token = f.token(*f.new_signer, A::eddsa);
    a::identity id;
    REQUIRE_FALSE(v.validate(old_token, id));
    CHECK(v.validate(new_token, id) == auth_errc::unknown_key_id);

    v.rotate_keys(make_set({pem_key("ed25519.pub.pem", "new")}), seconds(60));
    CHECK(v.key_count() == 1);
    CHECK_FALSE(v.validate(new_token, id));
    CHECK_FALSE(v.validate(old_token, id));         // by kid, from the grace set
    CHECK_FALSE(v.validate(old_token_no_kid, id));  // without kid, falls back too
    f.clock.advance(seconds(59));
    CHECK_FALSE(v.validate(old_token, id));
    f.clock.advance(seconds(1));
    CHECK(v.validate(old_token, id) == auth_errc::unknown_key_id);
    CHECK(v.validate(old_token_no_kid, id) == auth_errc::key_type_mismatch);  // only the Ed25519 key is left
    CHECK_FALSE(v.validate(new_token, id));

    v.set_keys(make_set({pem_key("ec256.pub.pem", "old")}));
    CHECK(v.validate(new_token, id) == auth_errc::unknown_key_id);  // no grace with set_keys
    CHECK_FALSE(v.validate(old_token, id));
}

TEST_CASE("rotation: a kid present in the new set never falls back to the old key") {
    rotation_fixture f;
    // Same kid "old" now names a different key: tokens signed by the former
    // key under that kid must fail even during the grace period.
    a::jwt_validator v(f.options(), make_set({pem_key("ec256.pub.pem", "old")}));
    const auto old_token = f.token(*f.old_signer, A::es256);
    a::identity id;
    REQUIRE_FALSE(v.validate(old_token, id));
    v.rotate_keys(make_set({pem_key("ed25519.pub.pem", "old")}), seconds(600));
    CHECK(v.validate(old_token, id) == auth_errc::key_type_mismatch);
}

TEST_CASE("rotation: JWKS documents, and a broken document keeps the current keys") {
    rotation_fixture f;
    a::jwt_validator v(f.options());
    const auto rsa_token = f.token(*private_key("rsa2048.key.pem", "rsa"), A::ps512);
    a::identity id;
    CHECK(v.validate(rsa_token, id) == auth_errc::no_keys);
    REQUIRE_FALSE(v.rotate_jwks(fixture("jwks.json"), seconds(0)));
    CHECK(v.key_count() == 5);
    CHECK_FALSE(v.validate(rsa_token, id));
    CHECK(v.rotate_jwks("{\"keys\":", seconds(30)) == auth_errc::jwks_not_json);
    CHECK(v.rotate_jwks(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]})", seconds(30)) ==
          auth_errc::invalid_key_material);
    CHECK(v.key_count() == 5);
    CHECK_FALSE(v.validate(rsa_token, id));
    // An empty key set with grace: old tokens keep working until it ends.
    REQUIRE_FALSE(v.rotate_jwks(R"({"keys":[]})", seconds(10)));
    CHECK(v.key_count() == 0);
    CHECK_FALSE(v.validate(rsa_token, id));
    f.clock.advance(seconds(10));
    CHECK(v.validate(rsa_token, id) == auth_errc::no_keys);
}
