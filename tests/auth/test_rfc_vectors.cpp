// The worked examples of RFC 7515 (A.1 HS256, A.2 RS256, A.3 ES256, A.4
// ES512), RFC 7519 (3.1, 6.1) and RFC 8037 (A.4 Ed25519).
#include "auth_support.hpp"

#include <doctest/doctest.h>

using namespace gatehouse::test::auth;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;

namespace {

// RFC 7515 A.1-A.3 and RFC 7519 3.1 share this claims set:
// {"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}
const char* const rfc_payload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

const char* const a1_token =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const char* const a1_key = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

const char* const a2_n =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-"
    "pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapH"
    "g665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4"
    "FRWyuXpoQ";
const char* const a2_signature =
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1"
    "dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jz"
    "DwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQG"
    "e77Rw";

const char* const a3_signature =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// The RFC tokens expired in 2011: validate at a time before that.
a::jwt_options rfc_options() {
    a::jwt_options o;
    o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1300819000)); };
    o.require_subject = false;
    o.require_session_key = false;
    return o;
}

a::key_ptr jwk(const nlohmann::json& j) {
    a::key_ptr k;
    const auto ec = a::load_jwk(j, {}, k);
    REQUIRE_FALSE(ec);
    return k;
}

std::error_code verify(const a::verification_key& key, A alg, const std::string& token) {
    const auto dot = token.rfind('.');
    const auto sig = b64_decode(token.substr(dot + 1));
    return a::verify_jws_signature(key, alg, token.substr(0, dot), reinterpret_cast<const unsigned char*>(sig.data()),
                                   sig.size());
}

}  // namespace

TEST_CASE("RFC 7515 A.1 / RFC 7519 3.1: HS256") {
    const auto key = jwk({{"kty", "oct"}, {"k", a1_key}});
    a::jwt_validator v(rfc_options(), make_set({key}));
    a::identity id;
    REQUIRE_FALSE(v.validate(a1_token, id));
    CHECK(id.issuer == "joe");
    REQUIRE(id.expires_at);
    CHECK(*id.expires_at == std::chrono::system_clock::time_point(std::chrono::seconds(1300819380)));
    REQUIRE(id.claim("http://example.com/is_root"));
    CHECK(*id.claim("http://example.com/is_root") == true);
    // Our signer produces the RFC's signature byte for byte.
    const auto signer = hmac_signer(b64_decode(a1_key), "");
    std::string sig;
    REQUIRE_FALSE(a::sign_jws(*signer, A::hs256, std::string(a1_token).substr(0, std::string(a1_token).rfind('.')), sig));
    CHECK(sig == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    // The RFC's expiry, one second after it: expired (leeway 0).
    auto late = rfc_options();
    late.leeway = std::chrono::seconds(0);
    late.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1300819380)); };
    a::jwt_validator expired(late, make_set({key}));
    CHECK(expired.validate(a1_token, id) == auth_errc::token_expired);
}

TEST_CASE("RFC 7515 A.2: RS256") {
    const auto key = jwk({{"kty", "RSA"}, {"n", a2_n}, {"e", "AQAB"}});
    const std::string token = std::string("eyJhbGciOiJSUzI1NiJ9.") + rfc_payload + "." + a2_signature;
    a::jwt_validator v(rfc_options(), make_set({key}));
    a::identity id;
    CHECK_FALSE(v.validate(token, id));
    CHECK(id.issuer == "joe");
    CHECK(verify(*key, A::ps256, token) == auth_errc::bad_signature);  // same key, other padding
}

TEST_CASE("RFC 7515 A.3: ES256 in JOSE r||s form") {
    const auto key = jwk({{"kty", "EC"}, {"crv", "P-256"}, {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                          {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}});
    const std::string token = std::string("eyJhbGciOiJFUzI1NiJ9.") + rfc_payload + "." + a3_signature;
    a::jwt_validator v(rfc_options(), make_set({key}));
    a::identity id;
    CHECK_FALSE(v.validate(token, id));
    // The same key from the RFC's PEM form.
    a::key_ptr pem;
    REQUIRE_FALSE(a::load_public_key_pem("-----BEGIN PUBLIC KEY-----\n"
                                         "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
                                         "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
                                         "-----END PUBLIC KEY-----\n",
                                         "", {}, pem));
    CHECK_FALSE(verify(*pem, A::es256, token));
}

TEST_CASE("RFC 7515 A.4: ES512 over a non-JSON payload (signature only)") {
    const auto key = jwk({{"kty", "EC"}, {"crv", "P-521"},
                          {"x", "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk"},
                          {"y", "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}});
    const std::string token =
        "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
        "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZ"
        "CPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
    CHECK_FALSE(verify(*key, A::es512, token));
    // As a JWT it is refused for what it is: a payload that is not JSON.
    a::jwt_validator v(rfc_options(), make_set({key}));
    a::identity id;
    CHECK(v.validate(token, id) == auth_errc::payload_not_json);
}

TEST_CASE("RFC 8037 A.4: Ed25519") {
    const auto key = jwk({{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}});
    const std::string token =
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    CHECK_FALSE(verify(*key, A::eddsa, token));
    std::string flipped = token;
    flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
    CHECK(verify(*key, A::eddsa, flipped) == auth_errc::bad_signature);
    a::jwt_validator v(rfc_options(), make_set({key}));
    a::identity id;
    CHECK(v.validate(token, id) == auth_errc::payload_not_json);  // "Example of Ed25519 signing"
}

TEST_CASE("RFC 7519 6.1: the unsecured JWT is refused") {
    const std::string token = std::string("eyJhbGciOiJub25lIn0.") + rfc_payload + ".";
    a::jwt_validator v(rfc_options(), make_set({jwk({{"kty", "oct"}, {"k", a1_key}})}));
    a::identity id;
    CHECK(v.validate(token, id) == auth_errc::unsecured_token);
}
