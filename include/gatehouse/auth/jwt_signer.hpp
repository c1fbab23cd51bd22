// Minting compact JWS tokens: for hosts that issue their own tokens (demo
// servers, tests, service-to-service credentials) and for gatehouse's tests
// and benchmarks. Verification never depends on this file.
#pragma once

#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/keys.hpp>
#include <gatehouse/detail/config.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace gatehouse::auth {

/// A private key (or HMAC secret) and its key id. Immutable, shareable
/// between threads. Secret material stays inside; never printed.
class signing_key {
public:
    signing_key(const signing_key&) = delete;
    signing_key& operator=(const signing_key&) = delete;
    GATEHOUSE_DECL ~signing_key();

    const std::string& key_id() const noexcept { return key_id_; }
    key_type type() const noexcept { return type_; }

private:
    signing_key() = default;
    friend struct signing_key_factory;

    std::string key_id_;
    key_type type_ = key_type::oct;
    std::string secret_;
    EVP_PKEY* pkey_ = nullptr;
};

using signing_key_ptr = std::shared_ptr<const signing_key>;

/// An HMAC signing key; key_too_weak under 32 bytes, invalid_key_material if empty.
GATEHOUSE_DECL std::error_code make_hmac_signing_key(std::string_view secret, std::string key_id,
                                                     signing_key_ptr& out);

/// A private key from PEM (PKCS#8 "PRIVATE KEY", "RSA PRIVATE KEY", "EC
/// PRIVATE KEY"); unencrypted only. Errors: invalid_pem,
/// unsupported_key_type, key_too_weak.
GATEHOUSE_DECL std::error_code load_private_key_pem(std::string_view pem, std::string key_id, signing_key_ptr& out);

/// Signs `signing_input` ("<header>.<payload>") and appends the base64url
/// signature to `signature_b64` (ECDSA in JOSE r||s form). Errors:
/// key_type_mismatch, key_too_weak (HS384/HS512 with a short secret),
/// crypto_failure.
GATEHOUSE_DECL std::error_code sign_jws(const signing_key& key, jwt_algorithm alg, std::string_view signing_input,
                                        std::string& signature_b64);

/// A complete token: header {"alg", "typ": "JWT", "kid" when the key has
/// one}, `claims` as the payload. `out` is replaced on success.
GATEHOUSE_DECL std::error_code sign_jwt(const nlohmann::json& claims, const signing_key& key, jwt_algorithm alg,
                                        std::string& out);

}  // namespace gatehouse::auth

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/auth/impl/jwt_signer.ipp>
#endif
