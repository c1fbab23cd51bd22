// Tokens minted by an independent implementation (PyJWT, see
// fixtures/generate.py), verified with keys from PEM and from the JWKS.
#include "auth_support.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;

namespace {

a::jwt_options fixture_options() {
    a::jwt_options o;
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(tokens_fixture().at("now").get<long long>()));
    o.clock = [now] { return now; };
    o.issuers = {"https://issuer.test"};
    o.audiences = {"gatehouse"};
    o.required_claims = {"jti"};
    return o;
}

a::key_set pem_keys() {
    return make_set({hmac_key(fixture_hmac_secret(), "hmac"), pem_key("rsa2048.pub.pem", "rsa"),
                     pem_key("ec256.pub.pem", "ec256"), pem_key("ec384.pub.pem", "ec384"),
                     pem_key("ec521.pub.pem", "ec521"), pem_key("ed25519.pub.pem", "ed25519")});
}

a::key_set jwks_keys() {
    a::key_set keys;
    REQUIRE_FALSE(a::parse_jwks(fixture("jwks.json"), keys));
    REQUIRE_FALSE(keys.add(hmac_key(fixture_hmac_secret(), "hmac")));
    return keys;
}

}  // namespace

TEST_CASE("PyJWT fixtures: every algorithm, keys from PEM and from JWKS") {
    const auto& tokens = tokens_fixture().at("tokens");
    std::size_t valid = 0;
    std::map<std::string, int> refused;
    std::set<std::string> algorithms;
    for (auto keys : {pem_keys(), jwks_keys()}) {
        a::jwt_validator v(fixture_options(), std::move(keys));
        for (const auto& t : tokens) {
            const auto token = t.at("token").get<std::string>();
            const auto expect = t.at("expect").get<std::string>();
            INFO(t.at("alg").get<std::string>() << " expecting " << expect);
            a::identity id;
            const auto ec = v.validate(token, id);
            if (expect != "ok") {
                const std::map<std::string, auth_errc> codes = {
                    {"bad_signature", auth_errc::bad_signature},
                    {"token_expired", auth_errc::token_expired},
                    {"unsecured_token", auth_errc::unsecured_token},
                    {"claim_wrong_type", auth_errc::claim_wrong_type},
                    {"payload_duplicate_member", auth_errc::payload_duplicate_member},
                    {"header_duplicate_member", auth_errc::header_duplicate_member}};
                REQUIRE(codes.count(expect) == 1);
                CHECK(ec == codes.at(expect));
                CHECK_FALSE(id.claims);
                ++refused[expect];
                continue;
            }
            REQUIRE_FALSE(ec);
            ++valid;
            algorithms.insert(t.at("alg").get<std::string>());
            const auto& c = t.at("claims");
            CHECK(id.subject == c.at("sub").get<std::string>());
            CHECK(id.session_key == c.at("session_key").get<std::string>());
            CHECK(id.token_id == c.at("jti").get<std::string>());
            CHECK(id.issuer == "https://issuer.test");
            CHECK(id.roles == std::vector<std::string>{"player", "tester"});
            CHECK(id.permissions == std::vector<std::string>{"chat:write", "profile:read"});
            CHECK(id.has_role("tester"));
            CHECK_FALSE(id.has_role("admin"));
            CHECK(id.has_permission("profile:read"));
            REQUIRE(id.expires_at);
            CHECK(*id.expires_at ==
                  std::chrono::system_clock::time_point(std::chrono::seconds(c.at("exp").get<long long>())));
            REQUIRE(id.claims);
            CHECK(id.claims->json() == c);
        }
    }
    CHECK(valid == 2 * a::jwt_algorithm_count);
    CHECK(algorithms.size() == a::jwt_algorithm_count);
    CHECK(refused.size() == 6);  // every kind of minted failure was seen (twice: PEM and JWKS keys)
}

TEST_CASE("PyJWT fixtures: our signer's tokens carry the same claims and verify with the same keys") {
    a::jwt_validator v(fixture_options(), pem_keys());
    const std::pair<A, a::signing_key_ptr> signers[] = {
        {A::hs512, hmac_signer(fixture_hmac_secret(), "hmac")}, {A::ps384, private_key("rsa2048.key.pem", "rsa")},
        {A::es512, private_key("ec521.key.pem", "ec521")},      {A::eddsa, private_key("ed25519.key.pem", "ed25519")}};
    for (const auto& signer : signers) {
        const A alg = signer.first;
        const auto& key = signer.second;
        INFO(std::string(a::to_string(alg)));
        const auto& claims = tokens_fixture().at("tokens").at(0).at("claims");
        std::string token;
        REQUIRE_FALSE(a::sign_jwt(claims, *key, alg, token));
        a::identity id;
        REQUIRE_FALSE(v.validate(token, id));
        CHECK(id.claims->json() == claims);
    }
}
