// Verification keys for JWS (RFC 7515/7518/8037): algorithms, keys from PEM,
// from a JWK and from a JWKS document (RFC 7517), and immutable key sets.
#pragma once

#include <gatehouse/auth/algorithm.hpp>
#include <gatehouse/auth/error.hpp>
#include <gatehouse/detail/config.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

// OpenSSL's types, so that this header does not pull in OpenSSL's headers.
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace gatehouse::auth {

/// One verification key: public key material (or an HMAC secret), its key
/// id, and the algorithms it may verify. Immutable once built and safe to
/// share between threads. Built by the make_/load_ functions below, which
/// check that every allowed algorithm fits the key type and strength.
/// Secrets are kept only inside OpenSSL contexts and are never printed.
class verification_key {
public:
    verification_key(const verification_key&) = delete;
    verification_key& operator=(const verification_key&) = delete;
    GATEHOUSE_DECL ~verification_key();

    const std::string& key_id() const noexcept { return key_id_; }
    key_type type() const noexcept { return type_; }
    algorithm_set allowed_algorithms() const noexcept { return allowed_; }
    /// Modulus size for RSA, curve size for EC/EdDSA, secret size in bits for HMAC.
    int bits() const noexcept { return bits_; }

    /// The public key (nullptr for HMAC keys). Owned by this object.
    EVP_PKEY* native_public_key() const noexcept { return pkey_; }
    /// A keyed HMAC context for hs256/hs384/hs512 (nullptr if that algorithm
    /// is not allowed). Never used directly: duplicated per verification.
    EVP_MAC_CTX* native_hmac_template(jwt_algorithm a) const noexcept;

private:
    verification_key() = default;
    friend struct key_factory;

    std::string key_id_;
    key_type type_ = key_type::oct;
    algorithm_set allowed_;
    int bits_ = 0;
    EVP_PKEY* pkey_ = nullptr;
    EVP_MAC_CTX* hmac_[3] = {nullptr, nullptr, nullptr};
};

using key_ptr = std::shared_ptr<const verification_key>;

/// An HMAC key. `allowed` empty means every HS algorithm the secret is long
/// enough for (RFC 7518 §3.2: at least the hash size). Errors:
/// invalid_key_material (empty secret), key_type_mismatch (a non-HS
/// algorithm requested), key_too_weak (a requested HS algorithm needs a
/// longer secret, or the secret is shorter than 32 bytes).
GATEHOUSE_DECL std::error_code make_hmac_key(std::string_view secret, std::string key_id, algorithm_set allowed,
                                             key_ptr& out);

/// A public key from PEM text: "PUBLIC KEY" (SubjectPublicKeyInfo), "RSA
/// PUBLIC KEY" (PKCS#1) or "CERTIFICATE" (its subject key). `allowed` empty
/// means every algorithm of the key type. Errors: invalid_pem,
/// unsupported_key_type, key_too_weak, key_type_mismatch.
GATEHOUSE_DECL std::error_code load_public_key_pem(std::string_view pem, std::string key_id, algorithm_set allowed,
                                                   key_ptr& out);

struct jwk_options {
    /// Algorithms any key may be used with; intersected with what the JWK
    /// says ("alg") or, without "alg", with everything its type supports.
    algorithm_set allowed = algorithm_set::all();
    /// Accept "oct" (HMAC) keys. Turn off for a JWKS fetched from an
    /// identity provider: it must never contain shared secrets.
    bool accept_symmetric = true;
};

/// A key from one JWK object (RFC 7517 §4; RFC 7518 §6; RFC 8037 §2).
/// Errors: jwk_malformed, invalid_key_material, unsupported_key_type,
/// jwk_algorithm_mismatch, key_too_weak, unsupported_algorithm.
GATEHOUSE_DECL std::error_code load_jwk(const nlohmann::json& jwk, const jwk_options& options, key_ptr& out);

/// An immutable-once-published collection of keys, looked up by "kid".
class key_set {
public:
    /// Adds a key; duplicate_key_id if another key has the same non-empty id.
    GATEHOUSE_DECL std::error_code add(key_ptr key);

    /// The key with id `kid`, or nullptr.
    GATEHOUSE_DECL const verification_key* find(std::string_view kid) const noexcept;

    const std::vector<key_ptr>& keys() const noexcept { return keys_; }
    std::size_t size() const noexcept { return keys_.size(); }
    bool empty() const noexcept { return keys_.empty(); }

private:
    std::vector<key_ptr> keys_;
};

struct jwks_options {
    jwk_options key;
    /// Largest document accepted, in bytes.
    std::size_t max_document_size = 256 * 1024;
    /// Most keys accepted in one document.
    std::size_t max_keys = 64;
};

/// Parses a JWKS document into `out` (replacing its contents only on
/// success). Keys that are not for signatures are skipped, as RFC 7517 §5
/// asks: unknown "kty", "use" other than "sig", "key_ops" without "verify",
/// an "alg" that is not a JWS algorithm gatehouse implements, "oct" keys when
/// not accepted, and keys left with no allowed algorithm. Any malformed key of
/// a supported type fails the whole document, so a broken rotation never
/// silently drops keys. Errors: jwks_too_large, jwks_not_json, jwks_malformed,
/// duplicate_key_id, and those of load_jwk.
GATEHOUSE_DECL std::error_code parse_jwks(std::string_view document, key_set& out, const jwks_options& options = {});

namespace detail {
/// Depth of the deepest array/object nesting in `text`, counting only
/// brackets outside strings; stops counting at `limit + 1`. Cheap guard run
/// before a JSON parser sees peer-controlled text.
inline std::size_t json_nesting_depth(std::string_view text, std::size_t limit) noexcept {
    std::size_t depth = 0;
    std::size_t max_depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                max_depth = depth;
                if (max_depth > limit) return max_depth;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}
}  // namespace detail

}  // namespace gatehouse::auth

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/auth/impl/keys.ipp>
#endif
