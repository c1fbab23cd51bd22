// Keys from PEM, JWK and JWKS: what is accepted, and every refusal.
#include "auth_support.hpp"

#include <doctest/doctest.h>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;
using gatehouse::auth::key_type;

TEST_CASE("algorithms: names round-trip, case-sensitive, each with its key type") {
    for (std::size_t i = 0; i < a::jwt_algorithm_count; ++i) {
        const auto alg = static_cast<A>(i);
        CHECK(a::parse_jwt_algorithm(a::to_string(alg)) == alg);
        CHECK(a::algorithms_for(a::required_key_type(alg)).contains(alg));
    }
    CHECK_FALSE(a::parse_jwt_algorithm("hs256"));
    CHECK_FALSE(a::parse_jwt_algorithm("none"));
    CHECK_FALSE(a::parse_jwt_algorithm("Ed25519"));
    CHECK(a::algorithm_set::all().bits() == (1u << 13) - 1);
}

TEST_CASE("PEM: public keys of every supported type, in every accepted encoding") {
    struct row {
        const char* file;
        key_type type;
        int bits;
    };
    const row rows[] = {
        {"rsa2048.pub.pem", key_type::rsa, 2048},   {"rsa2048.pkcs1.pem", key_type::rsa, 2048},
        {"rsa2048.cert.pem", key_type::rsa, 2048},  {"ec256.pub.pem", key_type::ec_p256, 256},
        {"ec384.pub.pem", key_type::ec_p384, 384},  {"ec521.pub.pem", key_type::ec_p521, 521},
        {"ed25519.pub.pem", key_type::ed25519, 256},
    };
    for (const auto& r : rows) {
        INFO(std::string(r.file));
        const auto k = pem_key(r.file, "k");
        CHECK(k->type() == r.type);
        CHECK(k->bits() == r.bits);
        CHECK(k->key_id() == "k");
        CHECK(k->allowed_algorithms() == a::algorithms_for(r.type));
        CHECK(k->native_public_key() != nullptr);
    }
    // Verification takes public keys only: a private key is never loaded here.
    a::key_ptr k;
    CHECK(a::load_public_key_pem(fixture("keys/ec256.key.pem"), "k", {}, k) == auth_errc::invalid_pem);
}

TEST_CASE("PEM: refusals") {
    a::key_ptr k;
    CHECK(a::load_public_key_pem("", "k", {}, k) == auth_errc::invalid_pem);
    CHECK(a::load_public_key_pem("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "k", {}, k) ==
          auth_errc::invalid_pem);
    CHECK(a::load_public_key_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "k", {}, k) ==
          auth_errc::invalid_pem);
    CHECK(a::load_public_key_pem(fixture("keys/rsa1024.pub.pem"), "k", {}, k) == auth_errc::key_too_weak);
    CHECK(a::load_public_key_pem(fixture("keys/secp256k1.pub.pem"), "k", {}, k) == auth_errc::unsupported_key_type);
    CHECK(a::load_public_key_pem(fixture("keys/ed448.pub.pem"), "k", {}, k) == auth_errc::unsupported_key_type);
    // The key type must match every allowed algorithm.
    CHECK(a::load_public_key_pem(fixture("keys/rsa2048.pub.pem"), "k", {A::hs256}, k) == auth_errc::key_type_mismatch);
    CHECK(a::load_public_key_pem(fixture("keys/ec256.pub.pem"), "k", {A::es384}, k) == auth_errc::key_type_mismatch);
    CHECK(a::load_public_key_pem(fixture("keys/ed25519.pub.pem"), "k", {A::es256}, k) == auth_errc::key_type_mismatch);
    CHECK_FALSE(k);
    CHECK_FALSE(a::load_public_key_pem(fixture("keys/rsa2048.pub.pem"), "k", {A::ps256, A::rs512}, k));
    CHECK(k->allowed_algorithms() == a::algorithm_set{A::ps256, A::rs512});
}

TEST_CASE("HMAC keys: strength follows RFC 7518 section 3.2") {
    a::key_ptr k;
    CHECK(a::make_hmac_key("", "k", {}, k) == auth_errc::invalid_key_material);
    CHECK(a::make_hmac_key(std::string(31, 's'), "k", {}, k) == auth_errc::key_too_weak);
    CHECK(a::make_hmac_key(std::string(32, 's'), "k", {A::hs384}, k) == auth_errc::key_too_weak);
    CHECK(a::make_hmac_key(std::string(32, 's'), "k", {A::rs256}, k) == auth_errc::key_type_mismatch);
    REQUIRE_FALSE(a::make_hmac_key(std::string(32, 's'), "k", {}, k));
    CHECK(k->allowed_algorithms() == a::algorithm_set{A::hs256});
    CHECK(k->native_hmac_template(A::hs256) != nullptr);
    CHECK(k->native_hmac_template(A::hs384) == nullptr);
    REQUIRE_FALSE(a::make_hmac_key(std::string(48, 's'), "k", {}, k));
    CHECK(k->allowed_algorithms() == a::algorithm_set{A::hs256, A::hs384});
    REQUIRE_FALSE(a::make_hmac_key(std::string(64, 's'), "k", {}, k));
    CHECK(k->allowed_algorithms() == a::algorithms_for(key_type::oct));
    CHECK(k->bits() == 512);
    CHECK(k->native_public_key() == nullptr);
}

TEST_CASE("JWK: refusals, each with its own code") {
    using json = nlohmann::json;
    const json ec_ok = {{"kty", "EC"}, {"crv", "P-256"},
                        {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                        {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}};
    a::key_ptr k;
    const a::jwk_options opts;
    REQUIRE_FALSE(a::load_jwk(ec_ok, opts, k));
    CHECK(k->type() == key_type::ec_p256);

    auto with = [](json j, const char* key, json value) {
        j[key] = std::move(value);
        return j;
    };
    auto without = [](json j, const char* key) {
        j.erase(key);
        return j;
    };
    struct row {
        const char* name;
        json jwk;
        auth_errc expected;
    };
    const row rows[] = {
        {"not an object", json::array(), auth_errc::jwk_malformed},
        {"no kty", without(ec_ok, "kty"), auth_errc::jwk_malformed},
        {"kty not a string", with(ec_ok, "kty", 3), auth_errc::jwk_malformed},
        {"unknown kty", with(ec_ok, "kty", "XYZ"), auth_errc::unsupported_key_type},
        {"kid not a string", with(ec_ok, "kid", 7), auth_errc::jwk_malformed},
        {"alg not a string", with(ec_ok, "alg", true), auth_errc::jwk_malformed},
        {"alg unknown", with(ec_ok, "alg", "ES257"), auth_errc::unsupported_algorithm},
        {"alg of another key type", with(ec_ok, "alg", "RS256"), auth_errc::jwk_algorithm_mismatch},
        {"alg of another curve", with(ec_ok, "alg", "ES384"), auth_errc::jwk_algorithm_mismatch},
        {"no x", without(ec_ok, "x"), auth_errc::jwk_malformed},
        {"x not base64url", with(ec_ok, "x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE+"), auth_errc::invalid_key_material},
        {"x too long", with(ec_ok, "x", "AH_Nzidw9sRdQYPL7m_bS3tYBzM1e-nvE7rPbjx70VRF"), auth_errc::invalid_key_material},
        {"x empty", with(ec_ok, "x", ""), auth_errc::invalid_key_material},
        {"point off the curve", with(ec_ok, "y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1"), auth_errc::invalid_key_material},
        {"unknown curve", with(ec_ok, "crv", "P-192"), auth_errc::unsupported_key_type},
        {"secp256k1", with(ec_ok, "crv", "secp256k1"), auth_errc::unsupported_key_type},
        {"Ed448", json{{"kty", "OKP"}, {"crv", "Ed448"}, {"x", "AAAA"}}, auth_errc::unsupported_key_type},
        {"Ed25519 wrong size", json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "AAAA"}}, auth_errc::invalid_key_material},
        {"RSA exponent 1", json{{"kty", "RSA"}, {"n", b64(std::string(256, '\xc1'))}, {"e", "AQ"}}, auth_errc::invalid_key_material},
        {"RSA even exponent", json{{"kty", "RSA"}, {"n", b64(std::string(256, '\xc1'))}, {"e", "Ag"}}, auth_errc::invalid_key_material},
        {"RSA 1024 bits", json{{"kty", "RSA"}, {"n", b64(std::string(128, '\xc1'))}, {"e", "AQAB"}}, auth_errc::key_too_weak},
        {"RSA no n", json{{"kty", "RSA"}, {"e", "AQAB"}}, auth_errc::jwk_malformed},
        {"RSA empty n", json{{"kty", "RSA"}, {"n", ""}, {"e", "AQAB"}}, auth_errc::invalid_key_material},
        {"oct short", json{{"kty", "oct"}, {"k", b64("short")}}, auth_errc::key_too_weak},
        {"oct with an RSA alg", json{{"kty", "oct"}, {"k", b64(std::string(64, 'k'))}, {"alg", "RS256"}}, auth_errc::jwk_algorithm_mismatch},
        {"oct HS512 with a 32-byte secret", json{{"kty", "oct"}, {"k", b64(std::string(32, 'k'))}, {"alg", "HS512"}}, auth_errc::key_too_weak},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        a::key_ptr out;
        CHECK(a::load_jwk(r.jwk, opts, out) == r.expected);
        CHECK_FALSE(out);
    }
    a::jwk_options no_oct;
    no_oct.accept_symmetric = false;
    CHECK(a::load_jwk(json{{"kty", "oct"}, {"k", b64(std::string(64, 'k'))}}, no_oct, k) == auth_errc::unsupported_key_type);
}

TEST_CASE("JWKS: the PyJWT fixture loads, and the encryption key is skipped") {
    a::key_set keys;
    REQUIRE_FALSE(a::parse_jwks(fixture("jwks.json"), keys));
    CHECK(keys.size() == 5);
    CHECK(keys.find("rsa")->type() == key_type::rsa);
    CHECK(keys.find("ec256")->type() == key_type::ec_p256);
    CHECK(keys.find("ec384")->type() == key_type::ec_p384);
    CHECK(keys.find("ec521")->type() == key_type::ec_p521);
    CHECK(keys.find("ed25519")->type() == key_type::ed25519);
    CHECK(keys.find("rsa-enc") == nullptr);
    CHECK(keys.find("nope") == nullptr);
}

TEST_CASE("JWKS: RFC 7517 appendix A examples") {
    // A.1 (EC part; "use": "enc" is skipped), A.3 (an A128KW key is skipped,
    // the HMAC key of RFC 7515 A.1 is loaded).
    const auto doc = R"({"keys":[
        {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
         "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"},
        {"kty":"oct","alg":"A128KW","k":"GawgguFyGrWKav7AX4VKUg"},
        {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
         "kid":"HMAC key used in JWS spec Appendix A.1 example"}]})";
    a::key_set keys;
    REQUIRE_FALSE(a::parse_jwks(doc, keys));
    REQUIRE(keys.size() == 1);
    CHECK(keys.keys()[0]->type() == key_type::oct);
    // The A.1 EC key itself is a valid P-256 point.
    a::key_ptr k;
    CHECK_FALSE(a::load_jwk(nlohmann::json::parse(R"({"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
         "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"})"), {}, k));
}

TEST_CASE("JWKS: a repeated member name is refused, never resolved by order (issue 13)") {
    a::key_set keys;
    const std::string ed = R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")";
    const std::string oct =
        R"({"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")";
    const auto doc = [](const std::string& key) { return R"({"keys":[)" + key + "]}"; };
    REQUIRE_FALSE(a::parse_jwks(doc(ed + R"(,"kid":"a"})"), keys));  // the baseline loads
    CHECK(a::parse_jwks(doc(ed + R"(,"kid":"a","kid":"b"})"), keys) == auth_errc::jwks_duplicate_member);
    CHECK(a::parse_jwks(doc(ed + R"(,"kid":"a","k\u0069d":"b"})"), keys) == auth_errc::jwks_duplicate_member);
    CHECK(a::parse_jwks(doc(ed + R"(,"x":"2mYWX1OVC1P8FOkmRuxlHqIuVlmvB4ZxXnN2Hf-ogg0"})"), keys) ==
          auth_errc::jwks_duplicate_member);
    CHECK(a::parse_jwks(doc(oct + R"(,"k":"AAAA","kid":"h"})"), keys) == auth_errc::jwks_duplicate_member);
    CHECK(a::parse_jwks(doc(R"({"kty":"RSA","n":"AQAB","e":"AQAB","n":"AQAB"})"), keys) ==
          auth_errc::jwks_duplicate_member);
    CHECK(a::parse_jwks(doc(ed + R"(,"ext":{"a":1,"a":2}})"), keys) == auth_errc::jwks_duplicate_member);
    CHECK(a::parse_jwks(R"({"keys":[],"keys":[)" + ed + "}]}", keys) == auth_errc::jwks_duplicate_member);
    // Even in a key that would be skipped: the document as a whole is refused.
    CHECK(a::parse_jwks(doc(R"({"kty":"XYZ","use":"enc","use":"sig"})"), keys) == auth_errc::jwks_duplicate_member);
    CHECK(keys.size() == 1);  // untouched by the refusals
    // The same names in different keys are no repetition.
    REQUIRE_FALSE(a::parse_jwks(R"({"keys":[)" + ed + R"(,"kid":"a"},)" + ed + R"(,"kid":"b","ext":{"kid":1}}]})", keys));
    CHECK(keys.size() == 2);
}

TEST_CASE("JWKS: refusals and skips") {
    a::key_set keys;
    const std::string ed = R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")";
    CHECK(a::parse_jwks("", keys) == auth_errc::jwks_not_json);
    CHECK(a::parse_jwks("{", keys) == auth_errc::jwks_not_json);
    CHECK(a::parse_jwks("[]", keys) == auth_errc::jwks_malformed);
    CHECK(a::parse_jwks("{}", keys) == auth_errc::jwks_malformed);
    CHECK(a::parse_jwks(R"({"keys":{}})", keys) == auth_errc::jwks_malformed);
    CHECK(a::parse_jwks(R"({"keys":[[[[[[[[[[]]]]]]]]]]})", keys) == auth_errc::jwks_malformed);
    CHECK(a::parse_jwks(R"({"keys":[1]})", keys) == auth_errc::jwk_malformed);
    CHECK(a::parse_jwks(R"({"keys":[{"kty":1}]})", keys) == auth_errc::jwk_malformed);
    CHECK(a::parse_jwks(R"({"keys":[)" + ed + R"(,"use":1}]})", keys) == auth_errc::jwk_malformed);
    CHECK(a::parse_jwks(R"({"keys":[)" + ed + R"(,"key_ops":"verify"}]})", keys) == auth_errc::jwk_malformed);
    CHECK(a::parse_jwks(R"({"keys":[)" + ed + R"(,"kid":"a"},)" + ed + R"(,"kid":"a"}]})", keys) ==
          auth_errc::duplicate_key_id);
    // A broken key of a supported type fails the whole document.
    CHECK(a::parse_jwks(R"({"keys":[)" + ed + R"(,"kid":"a"},{"kty":"OKP","crv":"Ed25519","x":"AA"}]})", keys) ==
          auth_errc::invalid_key_material);
    a::jwks_options small;
    small.max_keys = 1;
    CHECK(a::parse_jwks(R"({"keys":[)" + ed + "}," + ed + "}]}", keys, small) == auth_errc::jwks_too_large);
    small.max_document_size = 10;
    CHECK(a::parse_jwks(R"({"keys":[]})", keys, small) == auth_errc::jwks_too_large);
    CHECK(keys.empty());  // untouched by failures

    // Skipped: unknown kty, "use":"enc", key_ops without verify, unknown
    // algorithms, other OKP curves, and oct keys when symmetric keys are off.
    const std::string skip_doc = R"({"keys":[{"kty":"XYZ"},)" + ed + R"(,"use":"enc"},)" + ed +
                                 R"(,"key_ops":["encrypt"]},)" + ed + R"(,"alg":"ES256K"},{"kty":"OKP","crv":"X25519","x":"AA"},
        {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},)" +
                                 ed + R"(,"kid":"kept","key_ops":["sign","verify"]}]})";
    a::jwks_options public_only;
    public_only.key.accept_symmetric = false;
    REQUIRE_FALSE(a::parse_jwks(skip_doc, keys, public_only));
    REQUIRE(keys.size() == 1);
    CHECK(keys.keys()[0]->key_id() == "kept");
    // The host's algorithm restriction narrows (or skips) keys.
    a::jwks_options only_rs256;
    only_rs256.key.allowed = {A::rs256};
    REQUIRE_FALSE(a::parse_jwks(fixture("jwks.json"), keys, only_rs256));
    REQUIRE(keys.size() == 1);
    CHECK(keys.keys()[0]->allowed_algorithms() == a::algorithm_set{A::rs256});
}
