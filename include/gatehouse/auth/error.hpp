// Errors of the authentication layer, as std::error_code values.
#pragma once

#include <string>
#include <system_error>

namespace gatehouse::auth {

/// Why a credential, token, key or key set was refused. Zero is never used: a
/// default `std::error_code` means success. Messages never contain the
/// credential itself, so they are safe to log.
enum class auth_errc {
    // The Authorization header and the credential as a whole.
    missing_credentials = 1,  ///< no Authorization header, or only whitespace
    empty_credential,         ///< a scheme with nothing after it ("Bearer ")
    unknown_scheme,           ///< a scheme other than Bearer, ApiKey or Reconnect
    credential_too_large,     ///< the header value is longer than the configured maximum
    malformed_credential,     ///< the credential contains control characters or inner whitespace
    unsupported_credential_kind,  ///< no validator is configured for this kind of credential

    // Compact JWS structure and encoding.
    token_too_large,     ///< the token is longer than jwt_options::max_token_size
    too_few_segments,    ///< fewer than three dot-separated segments
    too_many_segments,   ///< more than three segments (JWE, or garbage)
    empty_segment,       ///< the header or payload segment is empty
    missing_signature,   ///< the signature segment is empty
    base64url_invalid_character,  ///< a character outside the base64url alphabet
    base64url_padding,            ///< '=' padding, which compact JWS forbids
    base64url_bad_length,         ///< a length that no byte string encodes to (4n+1)
    base64url_noncanonical,       ///< unused trailing bits are not zero
    header_too_large,    ///< the protected header exceeds jwt_options::max_header_size
    json_too_deep,       ///< header or payload nests deeper than jwt_options::max_json_depth
    header_not_json,     ///< the protected header does not parse as JSON
    header_not_object,   ///< the protected header is JSON, but not an object
    header_duplicate_member,   ///< an object in the protected header repeats a member name
    payload_not_json,    ///< the payload does not parse as JSON
    payload_not_object,  ///< the payload is JSON, but not an object
    payload_duplicate_member,  ///< an object in the payload repeats a member name (e.g. two "sub")

    // Header parameters and key selection.
    algorithm_missing,             ///< no "alg" header parameter
    header_parameter_wrong_type,   ///< "alg", "kid", "typ" or "crit" has the wrong JSON type
    unsecured_token,               ///< "alg": "none", always refused
    unsupported_algorithm,         ///< an "alg" value this library does not implement
    unsupported_critical_header,   ///< a "crit" header parameter (no extension is understood)
    unknown_key_id,                ///< "kid" names no key of the current (or grace) key set
    key_id_required,               ///< no "kid" and several keys could verify the algorithm
    no_key_for_algorithm,          ///< no "kid" and no key accepts the algorithm
    key_type_mismatch,             ///< the selected key's type cannot verify the algorithm
    algorithm_not_allowed,         ///< the selected key does not allow this algorithm
    malformed_signature,           ///< the signature has the wrong length for the algorithm
    bad_signature,                 ///< the signature does not verify

    // Claims.
    time_claim_wrong_type,     ///< "exp", "nbf" or "iat" is not a JSON number
    time_claim_out_of_range,   ///< a NumericDate too far from the epoch to be meaningful
    expiration_missing,        ///< no "exp" while jwt_options::require_expiration is set
    token_expired,             ///< "exp" is in the past (beyond the leeway)
    token_not_yet_valid,       ///< "nbf" is in the future (beyond the leeway)
    issued_in_future,          ///< "iat" is in the future (beyond the leeway)
    token_too_old,             ///< "iat" is older than jwt_options::max_age
    claim_wrong_type,          ///< a string-valued or list-valued claim has the wrong JSON type
                               ///< (e.g. "permissions" or "roles" not an array of strings)
    issuer_missing,            ///< no "iss" while issuers are configured
    issuer_mismatch,           ///< "iss" is not one of the accepted issuers
    audience_missing,          ///< no "aud" while audiences are configured
    audience_mismatch,         ///< no "aud" entry is one of the accepted audiences
    missing_required_claim,    ///< a claim listed in jwt_options::required_claims is absent
    subject_missing,           ///< the subject claim is absent or empty
    session_key_missing,       ///< the session key claim is absent or empty

    // Revocation.
    token_revoked,    ///< the token id ("jti") has been revoked
    session_revoked,  ///< the session key has been revoked
    account_revoked,  ///< every credential of the account has been revoked
    revocation_list_full,  ///< the revocation list reached its configured capacity

    // API keys.
    unknown_api_key,    ///< no API key with this hash is registered
    api_key_expired,    ///< the API key's identity has expired
    api_key_too_large,  ///< the presented API key is longer than the configured maximum

    // Keys and key sets (configuration and rotation).
    no_keys,                ///< the validator has no verification key
    invalid_pem,            ///< the PEM text holds no usable public key or certificate
    invalid_key_material,   ///< key bytes are malformed (bad JWK coordinates, empty secret)
    unsupported_key_type,   ///< a key type or curve that JOSE does not pair with any algorithm
    key_too_weak,           ///< RSA under 2048 bits, or an HMAC secret shorter than its hash
    duplicate_key_id,       ///< two keys in one set share a "kid"
    jwks_not_json,          ///< the JWKS document does not parse as JSON
    jwks_malformed,         ///< the JWKS is not an object with a "keys" array
    jwks_duplicate_member,  ///< an object in the JWKS (e.g. one key) repeats a member name
    jwks_too_large,         ///< the JWKS document or its key count exceeds the limit
    jwk_malformed,          ///< a JWK lacks a required member or has one of the wrong type
    jwk_algorithm_mismatch, ///< a JWK's "alg" does not fit its key type

    // Everything else.
    crypto_failure,  ///< OpenSSL failed for a reason unrelated to the input (out of memory)
    internal_error,  ///< an unexpected failure (e.g. an exception in a host callback)
};

class auth_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "gatehouse.auth"; }

    std::string message(int ev) const override {
        switch (static_cast<auth_errc>(ev)) {
        case auth_errc::missing_credentials: return "no credentials: the Authorization header is missing or empty";
        case auth_errc::empty_credential: return "the authorization scheme is followed by no credential";
        case auth_errc::unknown_scheme:
            return "unknown authorization scheme: expected Bearer, ApiKey or Reconnect";
        case auth_errc::credential_too_large: return "the Authorization header value is too long";
        case auth_errc::malformed_credential:
            return "the credential contains whitespace or control characters";
        case auth_errc::unsupported_credential_kind: return "no validator is configured for this kind of credential";
        case auth_errc::token_too_large: return "the token is longer than the configured maximum";
        case auth_errc::too_few_segments: return "the token has fewer than three dot-separated segments";
        case auth_errc::too_many_segments: return "the token has more than three segments (encrypted tokens are not accepted)";
        case auth_errc::empty_segment: return "the token's header or payload segment is empty";
        case auth_errc::missing_signature: return "the token has an empty signature segment";
        case auth_errc::base64url_invalid_character: return "a token segment contains a character outside base64url";
        case auth_errc::base64url_padding: return "a token segment contains '=' padding, which compact JWS forbids";
        case auth_errc::base64url_bad_length: return "a token segment has a length no base64url encoding produces";
        case auth_errc::base64url_noncanonical: return "a token segment has non-zero unused trailing bits";
        case auth_errc::header_too_large: return "the token header is larger than the configured maximum";
        case auth_errc::json_too_deep: return "the token's JSON nests deeper than the configured maximum";
        case auth_errc::header_not_json: return "the token header is not valid JSON";
        case auth_errc::header_not_object: return "the token header is not a JSON object";
        case auth_errc::header_duplicate_member: return "the token header repeats a member name";
        case auth_errc::payload_not_json: return "the token payload is not valid JSON";
        case auth_errc::payload_not_object: return "the token payload is not a JSON object";
        case auth_errc::payload_duplicate_member:
            return "the token payload repeats a member name (claim names must be unique)";
        case auth_errc::algorithm_missing: return "the token header has no \"alg\"";
        case auth_errc::header_parameter_wrong_type: return "a token header parameter has the wrong JSON type";
        case auth_errc::unsecured_token: return "unsecured tokens (\"alg\": \"none\") are refused";
        case auth_errc::unsupported_algorithm: return "the token's \"alg\" is not supported";
        case auth_errc::unsupported_critical_header: return "the token header lists critical extensions, none of which is supported";
        case auth_errc::unknown_key_id: return "the token's \"kid\" names no known key";
        case auth_errc::key_id_required: return "the token has no \"kid\" and several keys could verify it";
        case auth_errc::no_key_for_algorithm: return "no key accepts the token's algorithm";
        case auth_errc::key_type_mismatch: return "the selected key's type cannot verify the token's algorithm";
        case auth_errc::algorithm_not_allowed: return "the selected key does not allow the token's algorithm";
        case auth_errc::malformed_signature: return "the token signature has the wrong length for its algorithm";
        case auth_errc::bad_signature: return "the token signature does not verify";
        case auth_errc::time_claim_wrong_type: return "a time claim (exp, nbf, iat) is not a number";
        case auth_errc::time_claim_out_of_range: return "a time claim (exp, nbf, iat) is out of range";
        case auth_errc::expiration_missing: return "the token has no expiration (\"exp\")";
        case auth_errc::token_expired: return "the token has expired";
        case auth_errc::token_not_yet_valid: return "the token is not valid yet (\"nbf\")";
        case auth_errc::issued_in_future: return "the token was issued in the future (\"iat\")";
        case auth_errc::token_too_old: return "the token was issued too long ago (\"iat\")";
        case auth_errc::claim_wrong_type: return "a token claim has the wrong JSON type";
        case auth_errc::issuer_missing: return "the token has no issuer (\"iss\")";
        case auth_errc::issuer_mismatch: return "the token's issuer is not accepted";
        case auth_errc::audience_missing: return "the token has no audience (\"aud\")";
        case auth_errc::audience_mismatch: return "the token's audience is not accepted";
        case auth_errc::missing_required_claim: return "the token lacks a required claim";
        case auth_errc::subject_missing: return "the token has no subject";
        case auth_errc::session_key_missing: return "the token has no session key";
        case auth_errc::token_revoked: return "the token has been revoked";
        case auth_errc::session_revoked: return "the session has been revoked";
        case auth_errc::account_revoked: return "the account's credentials have been revoked";
        case auth_errc::revocation_list_full: return "the revocation list is full";
        case auth_errc::unknown_api_key: return "unknown API key";
        case auth_errc::api_key_expired: return "the API key has expired";
        case auth_errc::api_key_too_large: return "the API key is longer than the configured maximum";
        case auth_errc::no_keys: return "no verification key is configured";
        case auth_errc::invalid_pem: return "the PEM text holds no usable public key";
        case auth_errc::invalid_key_material: return "the key material is malformed";
        case auth_errc::unsupported_key_type: return "the key type or curve is not supported";
        case auth_errc::key_too_weak: return "the key is too weak for the algorithm (RSA < 2048 bits or short HMAC secret)";
        case auth_errc::duplicate_key_id: return "two keys share the same key id";
        case auth_errc::jwks_not_json: return "the JWKS document is not valid JSON";
        case auth_errc::jwks_malformed: return "the JWKS document is not an object with a \"keys\" array";
        case auth_errc::jwks_duplicate_member: return "the JWKS document repeats a member name within one object";
        case auth_errc::jwks_too_large: return "the JWKS document or its number of keys exceeds the limit";
        case auth_errc::jwk_malformed: return "a JWK lacks a required member or has one of the wrong type";
        case auth_errc::jwk_algorithm_mismatch: return "a JWK's \"alg\" does not fit its key type";
        case auth_errc::crypto_failure: return "the cryptographic library failed (resource exhaustion)";
        case auth_errc::internal_error: return "internal error during authentication";
        }
        return "unknown gatehouse.auth error";
    }
};

inline const std::error_category& auth_category() noexcept {
    static const auth_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(auth_errc e) noexcept {
    return {static_cast<int>(e), auth_category()};
}

}  // namespace gatehouse::auth

template <>
struct std::is_error_code_enum<gatehouse::auth::auth_errc> : std::true_type {};
