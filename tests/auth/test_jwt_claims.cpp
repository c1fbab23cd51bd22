// Claims: leeway at its exact edges, configurable claim names, optional
// requirements, and what ends up in the identity.
#include "auth_support.hpp"

#include <doctest/doctest.h>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;
using json = nlohmann::json;
using std::chrono::seconds;

namespace {

constexpr long long now_s = 1700000000;
const std::string secret(32, 'c');

struct claims_fixture {
    a::manual_clock clock{std::chrono::system_clock::time_point(seconds(now_s))};
    a::signing_key_ptr signer = hmac_signer(secret, "");

    a::jwt_options options() const {
        a::jwt_options o;
        o.clock = clock.source();
        return o;
    }
    std::error_code check(const a::jwt_options& o, const json& claims, a::identity& id) const {
        a::jwt_validator v(o, make_set({hmac_key(secret, "")}));
        std::string token;
        REQUIRE_FALSE(a::sign_jwt(claims, *signer, A::hs256, token));
        return v.validate(token, id);
    }
    std::error_code check(const json& claims) const {
        a::identity id;
        return check(options(), claims, id);
    }
    static json base() { return {{"sub", "acc"}, {"session_key", "s"}, {"exp", now_s + 60}}; }
    static json with(json j, const char* key, json value) {
        j[key] = std::move(value);
        return j;
    }
};

}  // namespace

TEST_CASE("claims: exp, nbf and iat at the edges of the leeway") {
    claims_fixture f;
    using F = claims_fixture;
    // Leeway 30 s (the default). exp: valid while now < exp + leeway.
    CHECK_FALSE(f.check(F::with(F::base(), "exp", now_s - 29)));
    CHECK(f.check(F::with(F::base(), "exp", now_s - 30)) == auth_errc::token_expired);
    CHECK_FALSE(f.check(F::with(F::base(), "exp", now_s - 29.5)));  // NumericDate may be fractional
    CHECK(f.check(F::with(F::base(), "exp", now_s - 30.5)) == auth_errc::token_expired);
    // nbf: valid once now + leeway >= nbf.
    CHECK_FALSE(f.check(F::with(F::base(), "nbf", now_s + 30)));
    CHECK(f.check(F::with(F::base(), "nbf", now_s + 31)) == auth_errc::token_not_yet_valid);
    // iat: not after now + leeway.
    CHECK_FALSE(f.check(F::with(F::base(), "iat", now_s + 30)));
    CHECK(f.check(F::with(F::base(), "iat", now_s + 31)) == auth_errc::issued_in_future);
    // Dates before 1970 and past 2262 (saturated) are dates, not errors.
    CHECK_FALSE(f.check(F::with(F::base(), "nbf", -1000)));
    CHECK_FALSE(f.check(F::with(F::base(), "exp", 253402300799LL)));
    CHECK(f.check(F::with(F::base(), "exp", 253402300800LL)) == auth_errc::time_claim_out_of_range);

    // Moving the clock expires a token without sleeping.
    a::identity id;
    const auto o = f.options();
    REQUIRE_FALSE(f.check(o, F::base(), id));
    f.clock.advance(seconds(89));
    CHECK_FALSE(f.check(o, F::base(), id));
    f.clock.advance(seconds(1));
    CHECK(f.check(o, F::base(), id) == auth_errc::token_expired);
}

TEST_CASE("claims: leeway zero, max_age, optional expiration") {
    claims_fixture f;
    using F = claims_fixture;
    auto o = f.options();
    o.leeway = seconds(0);
    a::identity id;
    CHECK(f.check(o, F::with(F::base(), "exp", now_s), id) == auth_errc::token_expired);
    CHECK_FALSE(f.check(o, F::with(F::base(), "exp", now_s + 1), id));
    CHECK(f.check(o, F::with(F::base(), "nbf", now_s + 1), id) == auth_errc::token_not_yet_valid);

    o.max_age = seconds(300);
    CHECK(f.check(o, F::base(), id) == auth_errc::missing_required_claim);  // max_age needs iat
    CHECK_FALSE(f.check(o, F::with(F::base(), "iat", now_s - 300), id));
    CHECK(f.check(o, F::with(F::base(), "iat", now_s - 301), id) == auth_errc::token_too_old);

    auto lax = f.options();
    lax.require_expiration = false;
    json no_exp = F::base();
    no_exp.erase("exp");
    REQUIRE_FALSE(f.check(lax, no_exp, id));
    CHECK_FALSE(id.expires_at);
    CHECK_FALSE(id.expired(f.clock.now()));
    CHECK(f.check(no_exp) == auth_errc::expiration_missing);
}

TEST_CASE("claims: configurable claim names and requirements") {
    claims_fixture f;
    auto o = f.options();
    o.subject_claim = "uid";
    o.session_key_claim = "sid";
    o.roles_claim = "groups";
    o.permissions_claim = "perms";
    o.scope_claim = "scope";
    const json claims = {{"uid", "account-9"},
                         {"sid", "9f3c"},
                         {"groups", {"admin", "player"}},
                         {"scope", "read  write "},
                         {"perms", {"chat"}},
                         {"exp", now_s + 60},
                         {"sub", "ignored"},
                         {"roles", {"ignored"}},
                         {"extra", {{"level", 3}}}};
    a::identity id;
    REQUIRE_FALSE(f.check(o, claims, id));
    CHECK(id.subject == "account-9");
    CHECK(id.session_key == "9f3c");
    CHECK(id.roles == std::vector<std::string>{"admin", "player"});
    CHECK(id.permissions == std::vector<std::string>{"chat", "read", "write"});
    CHECK(id.has_role("admin"));
    CHECK_FALSE(id.has_role("ignored"));
    REQUIRE(id.claim("extra"));
    CHECK(id.claim("extra")->at("level") == 3);
    CHECK(id.claim("missing") == nullptr);
    CHECK(id.token_id.empty());
    CHECK(id.issuer.empty());

    // Session key and subject can be optional (e.g. for an IdP without them).
    auto optional = f.options();
    optional.require_session_key = false;
    optional.require_subject = false;
    REQUIRE_FALSE(f.check(optional, json{{"exp", now_s + 60}}, id));
    CHECK(id.subject.empty());
    CHECK(id.session_key.empty());
    CHECK(f.check(json{{"exp", now_s + 60}, {"sub", "a"}}) == auth_errc::session_key_missing);
    CHECK(f.check(json{{"exp", now_s + 60}, {"sub", "a"}, {"session_key", ""}}) == auth_errc::session_key_missing);

    // Several accepted issuers and audiences.
    auto multi = f.options();
    multi.issuers = {"a", "b"};
    multi.audiences = {"x", "y"};
    CHECK_FALSE(f.check(multi, claims_fixture::with(claims_fixture::with(claims_fixture::base(), "iss", "b"), "aud",
                                                    {"q", "y"}),
                        id));
    CHECK(id.issuer == "b");
}

TEST_CASE("claims: roles and permissions are arrays of strings; the scope string form only when configured") {
    claims_fixture f;
    using F = claims_fixture;
    a::identity id;
    // Issue 13: a string where a list belongs grants nothing; the token is refused.
    CHECK(f.check(F::with(F::base(), "permissions", "admin:broadcast")) == auth_errc::claim_wrong_type);
    CHECK(f.check(F::with(F::base(), "permissions", "")) == auth_errc::claim_wrong_type);
    CHECK(f.check(F::with(F::base(), "roles", "admin")) == auth_errc::claim_wrong_type);
    CHECK(f.check(F::with(F::base(), "roles", nullptr)) == auth_errc::claim_wrong_type);
    CHECK(f.check(F::with(F::base(), "permissions", true)) == auth_errc::claim_wrong_type);
    REQUIRE_FALSE(f.check(f.options(), F::with(F::base(), "permissions", json::array()), id));
    CHECK(id.permissions.empty());

    // "scope" is an ordinary, unread claim unless scope_claim names it.
    REQUIRE_FALSE(f.check(f.options(), F::with(F::base(), "scope", "admin:broadcast"), id));
    CHECK_FALSE(id.has_permission("admin:broadcast"));
    auto o = f.options();
    o.scope_claim = "scope";
    REQUIRE_FALSE(f.check(o, F::with(F::with(F::base(), "scope", " a:x  b:y"), "permissions", {"c:z"}), id));
    CHECK(id.permissions == std::vector<std::string>{"c:z", "a:x", "b:y"});
    REQUIRE_FALSE(f.check(o, F::with(F::base(), "scope", ""), id));
    CHECK(id.permissions.empty());
    CHECK(f.check(o, F::with(F::base(), "scope", {"a:x"}), id) == auth_errc::claim_wrong_type);
    CHECK(f.check(o, F::with(F::base(), "scope", 1), id) == auth_errc::claim_wrong_type);
}

TEST_CASE("claims: the identity carries the expiry leeway it was accepted with (issue 13)") {
    claims_fixture f;
    using F = claims_fixture;
    using clock = std::chrono::system_clock;
    a::identity id;
    // Expired 20 s ago, inside the default 30 s leeway: accepted, and the
    // identity says until when (expires_at + expiry_leeway).
    REQUIRE_FALSE(f.check(f.options(), F::with(F::base(), "exp", now_s - 20), id));
    CHECK(id.expiry_leeway == seconds(30));
    REQUIRE(id.expires_at);
    CHECK(*id.expires_at == clock::time_point(seconds(now_s - 20)));
    REQUIRE(id.valid_until());
    CHECK(*id.valid_until() == clock::time_point(seconds(now_s + 10)));
    CHECK_FALSE(id.expired(f.clock.now()));
    CHECK_FALSE(id.expired(clock::time_point(seconds(now_s + 9))));
    CHECK(id.expired(clock::time_point(seconds(now_s + 10))));

    auto o = f.options();
    o.leeway = seconds(5);
    REQUIRE_FALSE(f.check(o, F::base(), id));
    CHECK(id.expiry_leeway == seconds(5));
    o.leeway = seconds(0);
    REQUIRE_FALSE(f.check(o, F::base(), id));
    CHECK(id.expiry_leeway == seconds(0));

    // No expiry: no deadline, whatever the leeway.
    o.require_expiration = false;
    json no_exp = F::base();
    no_exp.erase("exp");
    o.leeway = seconds(30);
    REQUIRE_FALSE(f.check(o, no_exp, id));
    CHECK_FALSE(id.valid_until());
    CHECK_FALSE(id.expired(clock::time_point::max()));
    // A date past what time_point holds saturates instead of overflowing.
    REQUIRE_FALSE(f.check(o, F::with(F::base(), "exp", 253402300799LL), id));
    REQUIRE(id.valid_until());
    CHECK(*id.valid_until() >= *id.expires_at);
    CHECK_FALSE(id.expired(f.clock.now()));
}

TEST_CASE("jwt_options: inconsistent configuration is refused at construction") {
    const auto bad = [](auto change) {
        a::jwt_options o;
        change(o);
        CHECK_THROWS_AS(a::jwt_validator{o}, std::invalid_argument);
    };
    bad([](a::jwt_options& o) { o.max_token_size = 0; });
    bad([](a::jwt_options& o) { o.max_header_size = 0; });
    bad([](a::jwt_options& o) { o.max_json_depth = 0; });
    bad([](a::jwt_options& o) { o.leeway = seconds(-1); });
    bad([](a::jwt_options& o) { o.max_age = seconds(0); });
    bad([](a::jwt_options& o) { o.clock = nullptr; });
    bad([](a::jwt_options& o) { o.session_key_claim.clear(); });
    bad([](a::jwt_options& o) { o.scope_claim = o.permissions_claim; });
    bad([](a::jwt_options& o) { o.scope_claim = o.roles_claim; });
    bad([](a::jwt_options& o) { o.issuers = {""}; });
    bad([](a::jwt_options& o) { o.audiences = {""}; });
}

TEST_CASE("signer: refusals") {
    a::signing_key_ptr k;
    CHECK(a::make_hmac_signing_key("", "", k) == auth_errc::invalid_key_material);
    CHECK(a::make_hmac_signing_key("short", "", k) == auth_errc::key_too_weak);
    CHECK(a::load_private_key_pem("nope", "", k) == auth_errc::invalid_pem);
    CHECK(a::load_private_key_pem(fixture("keys/rsa1024.key.pem"), "", k) == auth_errc::key_too_weak);
    CHECK(a::load_private_key_pem(fixture("keys/ed448.key.pem"), "", k) == auth_errc::unsupported_key_type);
    const auto hs = hmac_signer(std::string(32, 'x'), "");
    std::string out;
    CHECK(a::sign_jws(*hs, A::hs384, "a.b", out) == auth_errc::key_too_weak);
    CHECK(a::sign_jws(*hs, A::rs256, "a.b", out) == auth_errc::key_type_mismatch);
    CHECK(a::sign_jws(*private_key("ec256.key.pem", ""), A::es384, "a.b", out) == auth_errc::key_type_mismatch);
    CHECK(out.empty());
    // Invalid UTF-8 cannot be serialized as JSON.
    CHECK(a::sign_jwt(json{{"sub", "\xff"}}, *hs, A::hs256, out) == auth_errc::claim_wrong_type);
}
