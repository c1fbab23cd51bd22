// JWT (RFC 7519) validation of compact JWS tokens (RFC 7515) on OpenSSL 3.
#pragma once

#include <gatehouse/auth/clock.hpp>
#include <gatehouse/auth/detail/atomic_shared_ptr.hpp>
#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/identity.hpp>
#include <gatehouse/auth/keys.hpp>
#include <gatehouse/auth/token_validator.hpp>
#include <gatehouse/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gatehouse::auth {

namespace detail {
struct claim_fields;
}

/// How tokens are checked. Plain data; validated once by jwt_validator's
/// constructor. Defaults in the comments.
struct jwt_options {
    /// Longest token accepted, in bytes (8 KiB). Checked before anything else.
    std::size_t max_token_size = 8 * 1024;
    /// Longest encoded header segment accepted, in bytes (1 KiB).
    std::size_t max_header_size = 1024;
    /// Deepest JSON nesting accepted in header and payload (8).
    std::size_t max_json_depth = 8;
    /// Clock skew tolerated for exp, nbf and iat (30 s).
    std::chrono::seconds leeway{30};
    /// Refuse tokens without "exp" (true).
    bool require_expiration = true;
    /// When set, refuse tokens issued ("iat") longer ago than this; "iat"
    /// then becomes required (unset).
    std::optional<std::chrono::seconds> max_age;
    /// Accepted issuers; empty accepts any (and none). Non-empty requires "iss".
    std::vector<std::string> issuers;
    /// Accepted audiences; empty skips the check. Non-empty requires "aud" (a
    /// string or an array of strings) with at least one accepted entry.
    std::vector<std::string> audiences;
    /// Claims that must be present (any JSON value); at most 64.
    std::vector<std::string> required_claims;
    /// The claim holding the account id ("sub").
    std::string subject_claim = "sub";
    /// Refuse tokens without a non-empty subject (true).
    bool require_subject = true;
    /// The claim holding the session key (PROTOCOL.md §2.3) ("session_key").
    std::string session_key_claim = "session_key";
    /// Refuse tokens without a non-empty session key, as the reference
    /// server does (true).
    bool require_session_key = true;
    /// The claim holding roles: an array of strings ("roles"). Any other
    /// JSON type, a string included, refuses the token (claim_wrong_type):
    /// a wrongly typed claim never grants anything.
    std::string roles_claim = "roles";
    /// The claim holding permissions: an array of strings, as for roles
    /// ("permissions").
    std::string permissions_claim = "permissions";
    /// The OAuth 2.0 "scope" form (RFC 8693 §4.2, RFC 9068): when set, the
    /// claim of this name must be one string of space-separated names, each
    /// of which is added to the permissions; any other JSON type refuses the
    /// token (claim_wrong_type). Must differ from roles_claim and
    /// permissions_claim. Empty (the default): off, the claim is not read.
    std::string scope_claim;
    /// Where "now" comes from (the system clock).
    time_source clock = system_time();
};

/// Checks a JWS signature with one key: HMAC compared with CRYPTO_memcmp,
/// ECDSA signatures in JOSE r||s form, RSA-PSS with a salt the size of the
/// hash. Errors: key_type_mismatch, algorithm_not_allowed,
/// malformed_signature, bad_signature, crypto_failure.
GATEHOUSE_DECL std::error_code verify_jws_signature(const verification_key& key, jwt_algorithm alg,
                                                    std::string_view signing_input, const unsigned char* signature,
                                                    std::size_t signature_size) noexcept;

/// Validates bearer JWTs: structure and encoding, header, key selection by
/// "kid", signature, then claims; fills an identity. No I/O: validate() is
/// synchronous and async_validate completes inline.
///
/// Key rotation: set_keys/rotate_keys/set_jwks publish a new immutable key
/// snapshot with one atomic pointer swap; validations in flight keep using
/// the snapshot they started with and never wait for the rotation.
/// rotate_keys keeps the previous set usable for a grace period, so tokens
/// signed just before a rotation stay valid.
///
/// Revocation is not consulted here (it may need I/O): validator_chain does
/// it after a successful validation.
///
/// Thread-safety: every member function may be called concurrently.
/// Nothing here throws on bad input; the constructor throws
/// std::invalid_argument for inconsistent options (start-up configuration).
class jwt_validator final : public token_validator {
public:
    GATEHOUSE_DECL explicit jwt_validator(jwt_options options, key_set keys = {});

    /// The token (without "Bearer ") in, an identity out. `out` is assigned
    /// only on success.
    GATEHOUSE_DECL std::error_code validate(std::string_view token, identity& out) const noexcept;

    /// As above for a credential; unsupported_credential_kind unless bearer.
    GATEHOUSE_DECL std::error_code validate(const credential& cred, identity& out) const noexcept;

    /// Completes inline, on the calling thread.
    GATEHOUSE_DECL void async_validate(const credential& cred, completion done) override;

    /// Replaces the keys at once; the previous set stops verifying immediately.
    GATEHOUSE_DECL void set_keys(key_set keys);

    /// Replaces the keys; the previous current set keeps verifying tokens
    /// for `grace` (measured with options().clock). Tokens whose "kid" is
    /// in the new set, or that verify with it, never fall back.
    GATEHOUSE_DECL void rotate_keys(key_set keys, std::chrono::seconds grace);

    /// Parses a JWKS document and rotates to it with `grace`. On error the
    /// current keys stay in place.
    GATEHOUSE_DECL std::error_code rotate_jwks(std::string_view document, std::chrono::seconds grace,
                                               const jwks_options& options = {});

    /// Number of keys in the current set (not counting the grace set).
    GATEHOUSE_DECL std::size_t key_count() const noexcept;

    const jwt_options& options() const noexcept { return options_; }

private:
    struct key_snapshot {
        key_set current;
        key_set previous;
        std::chrono::system_clock::time_point previous_until;
    };

    std::error_code validate_impl(std::string_view token, identity& out) const;
    std::error_code check_claims(const detail::claim_fields& claims, std::chrono::system_clock::time_point now,
                                 identity& id) const;

    jwt_options options_;
    detail::atomic_shared_ptr<key_snapshot> keys_;
};

}  // namespace gatehouse::auth

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/auth/impl/jwt_validator.ipp>
#endif
