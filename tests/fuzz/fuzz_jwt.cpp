// libFuzzer target: the JWT validator on arbitrary tokens.
//
// The first input byte picks a mode: as given (structure, encoding, header,
// key selection and signature checks), or "header.payload" re-signed with
// the validator's HMAC key so that payload parsing and every claim check
// behind the signature are reached as well. Invariants: no crash, no
// exception, an error code of the auth category or success, and on success
// an identity that satisfies the configured requirements.
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace a = gatehouse::auth;

namespace {

const std::string secret(64, 'f');

struct harness {
    a::jwt_validator validator;
    a::signing_key_ptr signer;

    static a::jwt_options options() {
        a::jwt_options o;
        o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)); };
        o.issuers = {"iss"};
        o.audiences = {"aud"};
        o.required_claims = {"jti"};
        o.max_age = std::chrono::seconds(3600);
        return o;
    }
    static a::key_set keys() {
        a::key_set set;
        a::key_ptr k;
        if (a::make_hmac_key(secret, "h", {}, k) || set.add(k)) std::abort();
        if (a::make_hmac_key(std::string(32, 'g'), "h2", {}, k) || set.add(k)) std::abort();
        // RFC 7515 A.3 and RFC 8037 A.4 public keys, so other algorithms
        // reach their verification code.
        const auto ec = nlohmann::json{{"kty", "EC"}, {"crv", "P-256"}, {"kid", "e"},
                                       {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                                       {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}};
        const auto ed = nlohmann::json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"kid", "d"},
                                       {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}};
        for (const auto& j : {ec, ed})
            if (a::load_jwk(j, {}, k) || set.add(k)) std::abort();
        return set;
    }
    harness() : validator(options(), keys()) {
        if (a::make_hmac_signing_key(secret, "h", signer)) std::abort();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static harness h;
    if (size == 0) return 0;
    const bool resign = (data[0] & 1) != 0;
    std::string token(reinterpret_cast<const char*>(data + 1), size - 1);
    if (resign) {
        std::string signature;
        if (a::sign_jws(*h.signer, a::jwt_algorithm::hs256, token, signature)) std::abort();
        token += '.';
        token += signature;
    }
    a::identity id;
    const auto ec = h.validator.validate(token, id);
    if (ec) {
        if (ec.category() != a::auth_category()) std::abort();
        if (!id.subject.empty() || id.claims) std::abort();  // untouched on failure
    } else {
        if (id.subject.empty() || id.session_key.empty() || !id.expires_at || !id.claims) std::abort();
        if (id.issuer != "iss") std::abort();
        if (!id.claims->json().is_object()) std::abort();  // the lazy DOM always exists
    }
    return 0;
}
