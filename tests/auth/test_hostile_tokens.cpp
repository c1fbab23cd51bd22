// The hostile-token table: malformed, forged, confused, expired and
// ill-typed tokens, each refused with its own auth_errc and none crashing.
#include "auth_support.hpp"

#include <doctest/doctest.h>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;
using json = nlohmann::json;

namespace {

constexpr long long now_s = 1700000000;

struct hostile_fixture {
    std::string secret = std::string(64, '\x5a');
    a::signing_key_ptr hs = hmac_signer(secret, "hs");
    a::signing_key_ptr rsa = private_key("rsa2048.key.pem", "rsa");
    a::signing_key_ptr rsa_other = private_key("rsa2048b.key.pem", "rsa");
    a::signing_key_ptr ec = private_key("ec256.key.pem", "ec");
    a::signing_key_ptr ed = private_key("ed25519.key.pem", "ed");
    a::manual_clock clock{std::chrono::system_clock::time_point(std::chrono::seconds(now_s))};

    a::jwt_validator validator() const {
        a::jwt_options o;
        o.clock = clock.source();
        o.issuers = {"https://issuer.test"};
        o.audiences = {"gatehouse"};
        o.required_claims = {"jti"};
        return a::jwt_validator(o, make_set({hmac_key(secret, "hs", {A::hs256}),
                                             hmac_key(std::string(64, '\x33'), "hs2", {A::hs256}),
                                             pem_key("rsa2048.pub.pem", "rsa", {A::rs256}),
                                             pem_key("ec256.pub.pem", "ec"), pem_key("ed25519.pub.pem", "ed")}));
    }

    static json claims() {
        return {{"sub", "account-1"}, {"session_key", "session-1"}, {"iss", "https://issuer.test"},
                {"aud", "gatehouse"}, {"jti", "t-1"},                {"iat", now_s},
                {"nbf", now_s - 10},  {"exp", now_s + 3600},         {"roles", {"player"}}};
    }
    static json with(json j, const char* key, json value) {
        j[key] = std::move(value);
        return j;
    }
    static json without(json j, const char* key) {
        j.erase(key);
        return j;
    }
    static std::string header(const char* alg, const char* kid) {
        json h = {{"alg", alg}, {"typ", "JWT"}};
        if (kid != nullptr) h["kid"] = kid;
        return h.dump();
    }
    // A correctly signed HS256 token over arbitrary header and payload text.
    std::string hs_raw(const std::string& header_json, const std::string& payload_text) const {
        return signed_token(signing_input(header_json, payload_text), *hs, A::hs256);
    }
    std::string hs_token(const json& claims) const { return hs_raw(header("HS256", "hs"), claims.dump()); }
    std::string token(const a::signing_key& key, A alg, const char* kid, const json& body = claims()) const {
        return signed_token(signing_input(header(std::string(a::to_string(alg)).c_str(), kid), body.dump()), key, alg);
    }
};

std::string flip_signature_bit(std::string token) {
    const auto dot = token.rfind('.');
    auto sig = b64_decode(token.substr(dot + 1));
    sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
    return token.substr(0, dot + 1) + b64(sig);
}

std::string replace_signature(const std::string& token, const std::string& raw_signature) {
    return token.substr(0, token.rfind('.') + 1) + b64(raw_signature);
}

// base64url text of `s` whose unused trailing bits are made non-zero.
std::string noncanonical_b64(const std::string& s) {
    auto text = b64(s);
    REQUIRE(text.size() % 4 != 0);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    text.back() = alphabet[alphabet.find(text.back()) + 1];
    return text;
}

// The JSON text of `j` with `members` (raw "name":value text) appended at
// its end, so that a repeated name comes last: the one a last-wins parser
// would keep.
std::string with_raw(const json& j, const std::string& members) {
    auto text = j.dump();
    text.pop_back();
    return text + "," + members + "}";
}

// Extends base64url text to a length no byte string encodes to (4n+1).
std::string impossible_length(std::string text) {
    while (text.size() % 4 != 1) text += 'A';
    return text;
}

}  // namespace

TEST_CASE("hostile tokens: every case refused with its own code") {
    const hostile_fixture f;
    auto v = f.validator();
    const auto good = f.hs_token(f.claims());
    const auto header_b64 = good.substr(0, good.find('.'));
    const auto claims = f.claims();
    using F = hostile_fixture;

    // Sanity: the baseline token and one of every other algorithm are valid.
    {
        a::identity id;
        REQUIRE_FALSE(v.validate(good, id));
        REQUIRE_FALSE(v.validate(f.token(*f.rsa, A::rs256, "rsa"), id));
        REQUIRE_FALSE(v.validate(f.token(*f.ec, A::es256, "ec"), id));
        REQUIRE_FALSE(v.validate(f.token(*f.ed, A::eddsa, "ed"), id));
    }

    struct row {
        const char* name;
        std::string token;
        auth_errc expected;
    };
    std::string deep_json = "{\"a\":";
    for (int i = 0; i < 20; ++i) deep_json += "[";
    for (int i = 0; i < 20; ++i) deep_json += "]";
    deep_json += "}";
    std::string rsa_pem = fixture("keys/rsa2048.pub.pem");

    const std::vector<row> rows = {
        // Structure.
        {"empty", "", auth_errc::empty_credential},
        {"one segment", "abc", auth_errc::too_few_segments},
        {"two segments", header_b64 + ".e30", auth_errc::too_few_segments},
        {"truncated before the signature", good.substr(0, good.rfind('.')), auth_errc::too_few_segments},
        {"four segments", good + ".extra", auth_errc::too_many_segments},
        {"JWE-shaped, five segments", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", auth_errc::too_many_segments},
        {"empty header", good.substr(good.find('.')), auth_errc::empty_segment},
        {"empty payload", header_b64 + ".." + good.substr(good.rfind('.') + 1), auth_errc::empty_segment},
        {"empty signature", good.substr(0, good.rfind('.') + 1), auth_errc::missing_signature},
        {"oversize token", f.hs_token(F::with(claims, "pad", std::string(9000, 'x'))), auth_errc::token_too_large},
        {"huge header", f.hs_raw(json{{"alg", "HS256"}, {"x", std::string(2000, 'x')}}.dump(), claims.dump()),
         auth_errc::header_too_large},
        // Encoding.
        {"standard base64 '+' in the header", "eyJhbGciOiJIUzI1NiJ9+." + good.substr(good.find('.') + 1),
         auth_errc::base64url_invalid_character},
        {"'=' padding in the header", b64(R"({"alg":"HS256"})") + "=." + good.substr(good.find('.') + 1),
         auth_errc::base64url_padding},
        {"header of impossible length", impossible_length(header_b64) + "." + good.substr(good.find('.') + 1),
         auth_errc::base64url_bad_length},
        {"non-canonical header", noncanonical_b64(R"({"alg":"HS256","kid":"hs"})") + "." +
                                     good.substr(good.find('.') + 1),
         auth_errc::base64url_noncanonical},
        {"whitespace inside the token", header_b64 + " ." + good.substr(good.find('.') + 1),
         auth_errc::base64url_invalid_character},
        {"bad base64url in the signature", good.substr(0, good.size() - 2) + "*A", auth_errc::base64url_invalid_character},
        {"bad base64url in the (signed) payload",
         signed_token(header_b64 + ".e30*", *f.hs, A::hs256), auth_errc::base64url_invalid_character},
        // Header.
        {"header is not JSON", f.hs_raw("not json", claims.dump()), auth_errc::header_not_json},
        {"header is truncated JSON", f.hs_raw(R"({"alg":"HS256")", claims.dump()), auth_errc::header_not_json},
        {"header is an array", f.hs_raw(R"(["HS256"])", claims.dump()), auth_errc::header_not_object},
        {"header is null", f.hs_raw("null", claims.dump()), auth_errc::header_not_object},
        {"header nests too deep", f.hs_raw(deep_json, claims.dump()), auth_errc::json_too_deep},
        {"no alg", f.hs_raw(R"({"typ":"JWT","kid":"hs"})", claims.dump()), auth_errc::algorithm_missing},
        {"alg is a number", f.hs_raw(R"({"alg":256,"kid":"hs"})", claims.dump()), auth_errc::header_parameter_wrong_type},
        {"alg is null", f.hs_raw(R"({"alg":null,"kid":"hs"})", claims.dump()), auth_errc::header_parameter_wrong_type},
        {"alg none, empty signature", signing_input(R"({"alg":"none"})", claims.dump()) + ".", auth_errc::unsecured_token},
        {"alg none, with a signature", f.hs_raw(R"({"alg":"none","kid":"hs"})", claims.dump()), auth_errc::unsecured_token},
        {"alg NoNe", signing_input(R"({"alg":"NoNe"})", claims.dump()) + ".", auth_errc::unsecured_token},
        {"alg lowercase hs256", f.hs_raw(R"({"alg":"hs256","kid":"hs"})", claims.dump()), auth_errc::unsupported_algorithm},
        {"alg HS257", f.hs_raw(R"({"alg":"HS257","kid":"hs"})", claims.dump()), auth_errc::unsupported_algorithm},
        {"alg ES256K", f.hs_raw(R"({"alg":"ES256K","kid":"ec"})", claims.dump()), auth_errc::unsupported_algorithm},
        {"crit extension", f.hs_raw(R"({"alg":"HS256","kid":"hs","crit":["b64"],"b64":false})", claims.dump()),
         auth_errc::unsupported_critical_header},
        {"kid is a number", f.hs_raw(R"({"alg":"HS256","kid":1})", claims.dump()), auth_errc::header_parameter_wrong_type},
        {"typ is an object", f.hs_raw(R"({"alg":"HS256","kid":"hs","typ":{}})", claims.dump()),
         auth_errc::header_parameter_wrong_type},
        // Key selection and algorithm confusion.
        {"unknown kid", f.hs_raw(F::header("HS256", "nobody"), claims.dump()), auth_errc::unknown_key_id},
        {"empty kid", f.hs_raw(F::header("HS256", ""), claims.dump()), auth_errc::unknown_key_id},
        {"no kid, two HMAC keys", f.hs_raw(R"({"alg":"HS256"})", claims.dump()), auth_errc::key_id_required},
        {"no kid, no key for PS384", signed_token(signing_input(R"({"alg":"PS384"})", claims.dump()), *f.rsa, A::ps384),
         auth_errc::no_key_for_algorithm},
        {"HS256 keyed with the RSA public key PEM (confusion)",
         signed_token(signing_input(F::header("HS256", "rsa"), claims.dump()), *hmac_signer(rsa_pem, "rsa"), A::hs256),
         auth_errc::key_type_mismatch},
        {"RS256 token naming the HMAC key", f.token(*f.rsa, A::rs256, "hs"), auth_errc::key_type_mismatch},
        {"ES256 token naming the Ed25519 key", f.token(*f.ec, A::es256, "ed"), auth_errc::key_type_mismatch},
        {"PS256 with a key that allows only RS256", f.token(*f.rsa, A::ps256, "rsa"), auth_errc::algorithm_not_allowed},
        {"RS512 with a key that allows only RS256", f.token(*f.rsa, A::rs512, "rsa"), auth_errc::algorithm_not_allowed},
        // Signatures.
        {"HS256 signature bit flip", flip_signature_bit(good), auth_errc::bad_signature},
        {"RS256 signature bit flip", flip_signature_bit(f.token(*f.rsa, A::rs256, "rsa")), auth_errc::bad_signature},
        {"ES256 signature bit flip", flip_signature_bit(f.token(*f.ec, A::es256, "ec")), auth_errc::bad_signature},
        {"EdDSA signature bit flip", flip_signature_bit(f.token(*f.ed, A::eddsa, "ed")), auth_errc::bad_signature},
        {"RS256 signed by another key with the same kid", f.token(*f.rsa_other, A::rs256, "rsa"), auth_errc::bad_signature},
        {"payload changed after signing",
         good.substr(0, good.find('.') + 1) + b64(F::with(claims, "sub", "admin").dump()) + good.substr(good.rfind('.')),
         auth_errc::bad_signature},
        {"signature of another token", replace_signature(f.hs_token(F::with(claims, "sub", "x")),
                                                         b64_decode(good.substr(good.rfind('.') + 1))),
         auth_errc::bad_signature},
        {"HS256 signature truncated", replace_signature(good, b64_decode(good.substr(good.rfind('.') + 1)).substr(0, 16)),
         auth_errc::malformed_signature},
        {"ES256 signature of the wrong length", replace_signature(f.token(*f.ec, A::es256, "ec"), std::string(63, 'x')),
         auth_errc::malformed_signature},
        {"ES256 signature in DER instead of r||s",
         replace_signature(f.token(*f.ec, A::es256, "ec"),
                           std::string("\x30\x44\x02\x20", 4) + std::string(32, '\x11') + "\x02\x20" + std::string(32, '\x22')),
         auth_errc::malformed_signature},
        {"EdDSA signature too long", replace_signature(f.token(*f.ed, A::eddsa, "ed"), std::string(65, 'x')),
         auth_errc::malformed_signature},
        {"RSA signature one byte short", replace_signature(f.token(*f.rsa, A::rs256, "rsa"), std::string(255, 'x')),
         auth_errc::malformed_signature},
        {"absurdly long signature", good.substr(0, good.rfind('.') + 1) + std::string(2000, 'A'),
         auth_errc::malformed_signature},
        // Payload (correctly signed).
        {"payload is not JSON", f.hs_raw(F::header("HS256", "hs"), "not json"), auth_errc::payload_not_json},
        {"payload is a JSON array", f.hs_raw(F::header("HS256", "hs"), "[1,2]"), auth_errc::payload_not_object},
        {"payload is a JSON string", f.hs_raw(F::header("HS256", "hs"), "\"sub\""), auth_errc::payload_not_object},
        {"payload nests too deep", f.hs_raw(F::header("HS256", "hs"), deep_json), auth_errc::json_too_deep},
        // Time claims.
        {"expired", f.hs_token(F::with(claims, "exp", now_s - 31)), auth_errc::token_expired},
        {"not yet valid", f.hs_token(F::with(claims, "nbf", now_s + 31)), auth_errc::token_not_yet_valid},
        {"issued in the future", f.hs_token(F::with(claims, "iat", now_s + 31)), auth_errc::issued_in_future},
        {"no exp", f.hs_token(F::without(claims, "exp")), auth_errc::expiration_missing},
        {"exp is a string", f.hs_token(F::with(claims, "exp", std::to_string(now_s + 3600))), auth_errc::time_claim_wrong_type},
        {"exp is a boolean", f.hs_token(F::with(claims, "exp", true)), auth_errc::time_claim_wrong_type},
        {"exp is null", f.hs_token(F::with(claims, "exp", nullptr)), auth_errc::time_claim_wrong_type},
        {"nbf is an array", f.hs_token(F::with(claims, "nbf", json::array({now_s}))), auth_errc::time_claim_wrong_type},
        {"iat is an object", f.hs_token(F::with(claims, "iat", json::object())), auth_errc::time_claim_wrong_type},
        {"exp is 1e300", f.hs_token(F::with(claims, "exp", 1e300)), auth_errc::time_claim_out_of_range},
        {"exp is 2^64-1", f.hs_token(F::with(claims, "exp", std::uint64_t(-1))), auth_errc::time_claim_out_of_range},
        {"nbf is -2^63", f.hs_token(F::with(claims, "nbf", std::numeric_limits<std::int64_t>::min())),
         auth_errc::time_claim_out_of_range},
        // Issuer, audience, required claims.
        {"wrong iss", f.hs_token(F::with(claims, "iss", "https://evil.test")), auth_errc::issuer_mismatch},
        {"no iss", f.hs_token(F::without(claims, "iss")), auth_errc::issuer_missing},
        {"iss is a number", f.hs_token(F::with(claims, "iss", 7)), auth_errc::claim_wrong_type},
        {"wrong aud", f.hs_token(F::with(claims, "aud", "someone-else")), auth_errc::audience_mismatch},
        {"aud array without us", f.hs_token(F::with(claims, "aud", {"a", "b"})), auth_errc::audience_mismatch},
        {"empty aud array", f.hs_token(F::with(claims, "aud", json::array())), auth_errc::audience_mismatch},
        {"no aud", f.hs_token(F::without(claims, "aud")), auth_errc::audience_missing},
        {"aud is a number", f.hs_token(F::with(claims, "aud", 1)), auth_errc::claim_wrong_type},
        {"aud array holding a number", f.hs_token(F::with(claims, "aud", {"gatehouse", 1})), auth_errc::claim_wrong_type},
        {"required jti missing", f.hs_token(F::without(claims, "jti")), auth_errc::missing_required_claim},
        // Identity claims.
        {"no sub", f.hs_token(F::without(claims, "sub")), auth_errc::subject_missing},
        {"empty sub", f.hs_token(F::with(claims, "sub", "")), auth_errc::subject_missing},
        {"sub is a number", f.hs_token(F::with(claims, "sub", 42)), auth_errc::claim_wrong_type},
        {"no session key", f.hs_token(F::without(claims, "session_key")), auth_errc::session_key_missing},
        {"session key is an object", f.hs_token(F::with(claims, "session_key", json::object())), auth_errc::claim_wrong_type},
        {"jti is a number", f.hs_token(F::with(claims, "jti", 5)), auth_errc::claim_wrong_type},
        {"roles is an object", f.hs_token(F::with(claims, "roles", json::object())), auth_errc::claim_wrong_type},
        {"roles holds a number", f.hs_token(F::with(claims, "roles", {"player", 3})), auth_errc::claim_wrong_type},
        {"permissions is a number", f.hs_token(F::with(claims, "permissions", 3)), auth_errc::claim_wrong_type},
        // Wrongly typed grants (issue 13): a string is not a list.
        {"permissions is a string", f.hs_token(F::with(claims, "permissions", "admin:broadcast")),
         auth_errc::claim_wrong_type},
        {"permissions is a space-separated string", f.hs_token(F::with(claims, "permissions", "chat:write admin:broadcast")),
         auth_errc::claim_wrong_type},
        {"roles is a string", f.hs_token(F::with(claims, "roles", "admin")), auth_errc::claim_wrong_type},
        {"permissions is an array of arrays", f.hs_token(F::with(claims, "permissions", json::array({json::array({"admin:broadcast"})}))),
         auth_errc::claim_wrong_type},
        // Repeated member names (issue 13, RFC 7519 §4): refused, never "last wins".
        {"two sub", f.hs_raw(F::header("HS256", "hs"), with_raw(claims, R"("sub":"admin")")),
         auth_errc::payload_duplicate_member},
        {"two permissions",
         f.hs_raw(F::header("HS256", "hs"), with_raw(F::with(claims, "permissions", {"chat:write"}),
                                                      R"("permissions":["admin:broadcast"])")),
         auth_errc::payload_duplicate_member},
        {"two roles", f.hs_raw(F::header("HS256", "hs"), with_raw(claims, R"("roles":["admin"])")),
         auth_errc::payload_duplicate_member},
        {"two exp", f.hs_raw(F::header("HS256", "hs"), with_raw(claims, R"("exp":99999999999)")),
         auth_errc::payload_duplicate_member},
        {"sub twice, once with an escaped name", f.hs_raw(F::header("HS256", "hs"), with_raw(claims, R"("s\u0075b":"admin")")),
         auth_errc::payload_duplicate_member},
        {"an unknown claim twice",
         f.hs_raw(F::header("HS256", "hs"), with_raw(F::with(claims, "tier", "free"), R"("tier":"gold")")),
         auth_errc::payload_duplicate_member},
        {"a nested object repeats a member",
         f.hs_raw(F::header("HS256", "hs"), with_raw(claims, R"("realm_access":{"roles":["player"],"roles":["admin"]})")),
         auth_errc::payload_duplicate_member},
        {"two alg in the header (none, then HS256)", f.hs_raw(R"({"alg":"none","kid":"hs","alg":"HS256"})", claims.dump()),
         auth_errc::header_duplicate_member},
        {"two kid in the header", f.hs_raw(R"({"alg":"HS256","kid":"hs2","kid":"hs"})", claims.dump()),
         auth_errc::header_duplicate_member},
        {"an unknown header parameter twice", f.hs_raw(R"({"alg":"HS256","kid":"hs","x":1,"x":2})", claims.dump()),
         auth_errc::header_duplicate_member},
    };
    CHECK(rows.size() >= 40);
    std::set<int> codes;
    for (const auto& r : rows) {
        INFO(r.name);
        a::identity out;
        out.subject = "untouched";
        const auto ec = v.validate(r.token, out);
        CHECK(ec == r.expected);
        CHECK(out.subject == "untouched");
        CHECK_FALSE(out.claims);
        codes.insert(ec.value());
        // The asynchronous form reports the same, inline, with an empty identity.
        bool called = false;
        v.async_validate({a::credential_kind::bearer, r.token},
                                                       [&](std::error_code aec, a::identity id) {
                                                           called = true;
                                                           CHECK(aec == r.expected);
                                                           CHECK(id.subject.empty());
                                                       });
        CHECK(called);
    }
    MESSAGE(rows.size() << " hostile tokens, " << codes.size() << " distinct error codes");
}

TEST_CASE("hostile tokens: a repeated claim name is found among many claims") {
    const hostile_fixture f;
    auto v = f.validator();
    // More top-level members than the scanner keeps in its fixed table.
    json many = f.claims();
    for (int i = 0; i < 300; ++i) many["c" + std::to_string(i)] = i;
    a::identity id;
    REQUIRE_FALSE(v.validate(f.hs_token(many), id));
    CHECK(v.validate(f.hs_raw(hostile_fixture::header("HS256", "hs"), with_raw(many, R"("c299":0)")), id) ==
          auth_errc::payload_duplicate_member);
    CHECK(v.validate(f.hs_raw(hostile_fixture::header("HS256", "hs"), with_raw(many, R"("c0":0)")), id) ==
          auth_errc::payload_duplicate_member);
    CHECK(v.validate(f.hs_raw(hostile_fixture::header("HS256", "hs"), with_raw(many, R"("sub":"admin")")), id) ==
          auth_errc::payload_duplicate_member);
    // Beyond the scanner's table of 1024 names, with a larger token limit.
    a::jwt_options o;
    o.clock = f.clock.source();
    o.max_token_size = 64 * 1024;
    a::jwt_validator wide(o, make_set({hmac_key(f.secret, "hs", {A::hs256})}));
    json huge = f.claims();
    for (int i = 0; i < 1500; ++i) huge["c" + std::to_string(i)] = i;
    REQUIRE_FALSE(wide.validate(f.hs_token(huge), id));
    CHECK(wide.validate(f.hs_raw(hostile_fixture::header("HS256", "hs"), with_raw(huge, R"("c1400":0)")), id) ==
          auth_errc::payload_duplicate_member);
    CHECK(wide.validate(f.hs_raw(hostile_fixture::header("HS256", "hs"), with_raw(huge, R"("sub":"admin")")), id) ==
          auth_errc::payload_duplicate_member);
    // Sibling objects may use the same names; only one object's members must differ.
    CHECK_FALSE(v.validate(f.hs_token(hostile_fixture::with(f.claims(), "list", json::array({json{{"a", 1}}, json{{"a", 2}}}))), id));
}

TEST_CASE("hostile tokens: no kid with one key still checks the key type (RS256 key, HS256 token)") {
    // The classic confusion attack against a single-key RS256 verifier.
    a::jwt_options o;
    o.require_expiration = false;
    o.require_session_key = false;
    a::jwt_validator v(o, make_set({pem_key("rsa2048.pub.pem", "")}));
    const auto forged = signed_token(signing_input(R"({"alg":"HS256"})", R"({"sub":"admin"})"),
                                     *hmac_signer(fixture("keys/rsa2048.pub.pem"), ""), A::hs256);
    a::identity id;
    CHECK(v.validate(forged, id) == auth_errc::key_type_mismatch);
}

TEST_CASE("hostile tokens: a validator without keys, and credential kinds") {
    a::jwt_validator v(a::jwt_options{});
    a::identity id;
    const hostile_fixture f;
    CHECK(v.validate(f.hs_token(f.claims()), id) == auth_errc::no_keys);
    CHECK(v.validate(a::credential{a::credential_kind::api_key, "x.y.z"}, id) == auth_errc::unsupported_credential_kind);
    CHECK(v.key_count() == 0);
}
