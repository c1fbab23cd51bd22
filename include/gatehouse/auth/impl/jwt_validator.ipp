// Implementation of gatehouse/auth/jwt_validator.hpp.
#pragma once

#include <gatehouse/auth/detail/base64url.hpp>
#include <gatehouse/auth/detail/json_scan.hpp>
#include <gatehouse/auth/detail/openssl.hpp>
#include <gatehouse/auth/jwt_validator.hpp>

#include <openssl/crypto.h>
#include <openssl/rsa.h>

#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>

namespace gatehouse::auth {

GATEHOUSE_DECL std::error_code verify_jws_signature(const verification_key& key, jwt_algorithm alg,
                                                    std::string_view signing_input, const unsigned char* signature,
                                                    std::size_t signature_size) noexcept {
    if (required_key_type(alg) != key.type()) return auth_errc::key_type_mismatch;
    if (!key.allowed_algorithms().contains(alg)) return auth_errc::algorithm_not_allowed;

    if (detail::is_hmac(alg)) {
        EVP_MAC_CTX* keyed = key.native_hmac_template(alg);
        if (keyed == nullptr) return auth_errc::algorithm_not_allowed;
        // Duplicating the keyed context reuses the precomputed inner and
        // outer pads instead of re-keying.
        detail::mac_ctx_ptr ctx(EVP_MAC_CTX_dup(keyed));
        unsigned char mac[EVP_MAX_MD_SIZE];
        std::size_t mac_size = 0;
        if (!ctx || EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                                   signing_input.size()) != 1 ||
            EVP_MAC_final(ctx.get(), mac, &mac_size, sizeof mac) != 1) {
            ERR_clear_error();
            return auth_errc::crypto_failure;
        }
        if (signature_size != mac_size) return auth_errc::malformed_signature;
        if (CRYPTO_memcmp(mac, signature, mac_size) != 0) return auth_errc::bad_signature;
        return {};
    }

    EVP_PKEY* pkey = key.native_public_key();
    if (pkey == nullptr) return auth_errc::key_type_mismatch;
    unsigned char der[2 * (66 + 1) + 9];
    const unsigned char* sig = signature;
    std::size_t sig_size = signature_size;
    if (detail::is_ecdsa(alg)) {
        const std::size_t half = detail::ecdsa_component_size(alg);
        if (signature_size != 2 * half) return auth_errc::malformed_signature;
        sig_size = detail::ecdsa_jose_to_der(signature, half, der);
        sig = der;
    } else if (alg == jwt_algorithm::eddsa) {
        if (signature_size != 64) return auth_errc::malformed_signature;
    } else if (signature_size != static_cast<std::size_t>(EVP_PKEY_get_size(pkey))) {
        return auth_errc::malformed_signature;
    }

    detail::md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx) return auth_errc::crypto_failure;
    EVP_PKEY_CTX* pctx = nullptr;
    const EVP_MD* md = alg == jwt_algorithm::eddsa ? nullptr : detail::sha(detail::hash_bits(alg));
    if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) {
        ERR_clear_error();
        return auth_errc::crypto_failure;
    }
    if (detail::is_rsa_pss(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
        ERR_clear_error();
        return auth_errc::crypto_failure;
    }
    const int ok = EVP_DigestVerify(ctx.get(), sig, sig_size,
                                    reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
    if (ok != 1) {
        ERR_clear_error();
        return auth_errc::bad_signature;
    }
    return {};
}

namespace detail {

// NumericDates beyond year 9999 are garbage, not dates.
constexpr double max_numeric_date = 253402300799.0;

inline std::error_code numeric_date(const json::value& v, std::chrono::system_clock::time_point& out) noexcept {
    using clock = std::chrono::system_clock;
    if (v.type != json::kind::number) return auth_errc::time_claim_wrong_type;
    const std::string_view raw = v.raw;
    double seconds = 0;
    if (raw.find_first_of(".eE") == std::string_view::npos) {
        // An integer: exact, without a detour through double.
        const bool negative = raw[0] == '-';
        const std::string_view digits = raw.substr(negative ? 1 : 0);
        if (digits.size() > 12) return auth_errc::time_claim_out_of_range;
        std::uint64_t magnitude = 0;
        for (const char c : digits) magnitude = magnitude * 10 + static_cast<std::uint64_t>(c - '0');
        if (magnitude > static_cast<std::uint64_t>(max_numeric_date)) return auth_errc::time_claim_out_of_range;
        seconds = negative ? -static_cast<double>(magnitude) : static_cast<double>(magnitude);
    } else {
        seconds = json::scanner::to_double(raw);
        if (!(seconds <= max_numeric_date && seconds >= -max_numeric_date)) return auth_errc::time_claim_out_of_range;
    }
    // Dates past what time_point holds (year 2262 with nanosecond ticks)
    // saturate: still later than any "now".
    const double limit = static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                                  clock::duration::max()).count()) - 1.0;
    if (seconds >= limit) {
        out = clock::time_point::max();
    } else if (seconds <= -limit) {
        out = clock::time_point::min();
    } else {
        out = clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds)));
    }
    return {};
}

inline void split_spaces(const std::string& s, std::vector<std::string>& out) {
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ') ++j;
        if (j > i) out.emplace_back(s, i, j - i);
        i = j;
    }
}

/// Strings of a roles/permissions claim: an array of strings, nothing else.
/// A string is refused, not split: "permissions": "admin:broadcast" from an
/// issuer that meant something else must not grant admin:broadcast.
inline std::error_code string_list(const json::value& v, std::vector<std::string>& out) {
    if (v.type != json::kind::array) return auth_errc::claim_wrong_type;
    const bool all_strings = json::scanner::string_elements(
        v.raw, [&out](std::string_view raw, bool escaped) { out.push_back(json::unescape(raw, escaped)); });
    return all_strings ? std::error_code{} : make_error_code(auth_errc::claim_wrong_type);
}

inline std::error_code string_claim(const std::optional<json::value>& v, std::string& out) {
    if (!v) return {};
    if (v->type != json::kind::string) return auth_errc::claim_wrong_type;
    out = json::unescape(v->raw, v->escaped);
    return {};
}

inline bool contains(const std::vector<std::string>& list, std::string_view s) noexcept {
    for (const auto& e : list)
        if (e == s) return true;
    return false;
}

/// The members of the protected header that validation reads.
struct header_fields {
    std::optional<json::value> alg;
    std::optional<json::value> kid;
    std::optional<json::value> typ;
    bool crit = false;
};

/// Names of an OAuth "scope" claim: one string of space-separated names.
inline std::error_code scope_list(const json::value& v, std::vector<std::string>& out) {
    if (v.type != json::kind::string) return auth_errc::claim_wrong_type;
    split_spaces(json::unescape(v.raw, v.escaped), out);
    return {};
}

/// The claims that validation reads; `required_seen` has bit i set when
/// jwt_options::required_claims[i] is present.
struct claim_fields {
    std::optional<json::value> exp, nbf, iat, iss, aud, jti, subject, session_key, roles, permissions, scope;
    std::uint64_t required_seen = 0;
};

inline std::error_code scan_error(json::scan_result r, auth_errc not_json, auth_errc not_object,
                                  auth_errc duplicate) noexcept {
    switch (r) {
    case json::scan_result::ok: return {};
    case json::scan_result::not_object: return not_object;
    case json::scan_result::duplicate_member: return duplicate;
    case json::scan_result::too_deep: return auth_errc::json_too_deep;
    case json::scan_result::not_json: break;
    }
    return not_json;
}

}  // namespace detail

GATEHOUSE_DECL jwt_validator::jwt_validator(jwt_options options, key_set keys) : options_(std::move(options)) {
    if (options_.max_token_size == 0) throw std::invalid_argument("jwt_options: max_token_size must be positive");
    if (options_.max_header_size == 0) throw std::invalid_argument("jwt_options: max_header_size must be positive");
    if (options_.max_json_depth == 0) throw std::invalid_argument("jwt_options: max_json_depth must be positive");
    if (options_.leeway.count() < 0) throw std::invalid_argument("jwt_options: leeway must not be negative");
    if (options_.max_age && options_.max_age->count() <= 0)
        throw std::invalid_argument("jwt_options: max_age must be positive when set");
    if (!options_.clock) throw std::invalid_argument("jwt_options: clock must be set");
    if (options_.subject_claim.empty() || options_.session_key_claim.empty() || options_.roles_claim.empty() ||
        options_.permissions_claim.empty())
        throw std::invalid_argument("jwt_options: claim names must not be empty");
    if (!options_.scope_claim.empty() &&
        (options_.scope_claim == options_.roles_claim || options_.scope_claim == options_.permissions_claim))
        throw std::invalid_argument("jwt_options: scope_claim must differ from roles_claim and permissions_claim");
    if (options_.required_claims.size() > 64)
        throw std::invalid_argument("jwt_options: at most 64 required claims");
    for (const auto& s : options_.issuers)
        if (s.empty()) throw std::invalid_argument("jwt_options: an accepted issuer is empty");
    for (const auto& s : options_.audiences)
        if (s.empty()) throw std::invalid_argument("jwt_options: an accepted audience is empty");
    auto snapshot = std::make_shared<key_snapshot>();
    snapshot->current = std::move(keys);
    keys_.store(std::move(snapshot));
}

GATEHOUSE_DECL void jwt_validator::set_keys(key_set keys) {
    auto snapshot = std::make_shared<key_snapshot>();
    snapshot->current = std::move(keys);
    keys_.store(std::move(snapshot));
}

GATEHOUSE_DECL void jwt_validator::rotate_keys(key_set keys, std::chrono::seconds grace) {
    auto snapshot = std::make_shared<key_snapshot>();
    snapshot->current = std::move(keys);
    const auto old = keys_.load();
    if (old && grace.count() > 0) {
        snapshot->previous = old->current;
        snapshot->previous_until = options_.clock() + grace;
    }
    // Two concurrent rotations: the last store wins; each snapshot is whole.
    keys_.store(std::move(snapshot));
}

GATEHOUSE_DECL std::error_code jwt_validator::rotate_jwks(std::string_view document, std::chrono::seconds grace,
                                                          const jwks_options& options) {
    key_set keys;
    if (auto ec = parse_jwks(document, keys, options)) return ec;
    try {
        rotate_keys(std::move(keys), grace);
    } catch (...) {
        return auth_errc::crypto_failure;
    }
    return {};
}

GATEHOUSE_DECL std::size_t jwt_validator::key_count() const noexcept {
    const auto snapshot = keys_.load();
    return snapshot ? snapshot->current.size() : 0;
}

GATEHOUSE_DECL std::error_code jwt_validator::validate(const credential& cred, identity& out) const noexcept {
    if (cred.kind != credential_kind::bearer) return auth_errc::unsupported_credential_kind;
    return validate(cred.value, out);
}

GATEHOUSE_DECL std::error_code jwt_validator::validate(std::string_view token, identity& out) const noexcept {
    try {
        return validate_impl(token, out);
    } catch (const std::bad_alloc&) {
        return auth_errc::crypto_failure;
    } catch (...) {
        return auth_errc::internal_error;
    }
}

GATEHOUSE_DECL void jwt_validator::async_validate(const credential& cred, completion done) {
    identity id;
    const auto ec = validate(cred, id);
    done(ec, ec ? identity{} : std::move(id));
}

namespace detail {

// Picks the key for a token from one key set. With a "kid" only that key;
// without, the only key of the set, or the only key allowing the algorithm.
inline std::error_code select_key(const key_set& keys, const std::string* kid, jwt_algorithm alg,
                                  const verification_key*& out) noexcept {
    if (keys.empty()) return auth_errc::no_keys;
    if (kid != nullptr) {
        out = keys.find(*kid);
        return out ? std::error_code{} : make_error_code(auth_errc::unknown_key_id);
    }
    if (keys.size() == 1) {
        out = keys.keys().front().get();
        return {};
    }
    const verification_key* found = nullptr;
    for (const auto& k : keys.keys()) {
        if (!k->allowed_algorithms().contains(alg)) continue;
        if (found != nullptr) return auth_errc::key_id_required;
        found = k.get();
    }
    if (found == nullptr) return auth_errc::no_key_for_algorithm;
    out = found;
    return {};
}

inline bool iequals_none(const std::string& s) noexcept {
    return s.size() == 4 && (s[0] | 0x20) == 'n' && (s[1] | 0x20) == 'o' && (s[2] | 0x20) == 'n' &&
           (s[3] | 0x20) == 'e';
}

}  // namespace detail

GATEHOUSE_DECL std::error_code jwt_validator::validate_impl(std::string_view token, identity& out) const {
    if (token.empty()) return auth_errc::empty_credential;
    if (token.size() > options_.max_token_size) return auth_errc::token_too_large;
    const auto dot1 = token.find('.');
    if (dot1 == std::string_view::npos) return auth_errc::too_few_segments;
    const auto dot2 = token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos) return auth_errc::too_few_segments;
    if (token.find('.', dot2 + 1) != std::string_view::npos) return auth_errc::too_many_segments;
    const auto header_b64 = token.substr(0, dot1);
    const auto payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const auto signature_b64 = token.substr(dot2 + 1);
    if (header_b64.empty() || payload_b64.empty()) return auth_errc::empty_segment;
    if (header_b64.size() > options_.max_header_size) return auth_errc::header_too_large;

    // --- header ---
    std::string header_text;
    if (auto ec = detail::base64url_decode(header_b64, header_text)) return ec;
    detail::header_fields h;
    const auto header_scan = detail::json::scanner(header_text, options_.max_json_depth)
                                 .top_object([&h](std::string_view key, bool escaped, const detail::json::value& v) {
                                     const std::string unescaped = escaped ? detail::json::unescape(key, true) : std::string();
                                     const std::string_view k = escaped ? std::string_view(unescaped) : key;
                                     if (k == "alg") h.alg = v;
                                     else if (k == "kid") h.kid = v;
                                     else if (k == "typ") h.typ = v;
                                     else if (k == "crit") h.crit = true;
                                 });
    if (auto ec = detail::scan_error(header_scan, auth_errc::header_not_json, auth_errc::header_not_object,
                                     auth_errc::header_duplicate_member))
        return ec;
    if (!h.alg) return auth_errc::algorithm_missing;
    if (h.alg->type != detail::json::kind::string) return auth_errc::header_parameter_wrong_type;
    const std::string alg_name = detail::json::unescape(h.alg->raw, h.alg->escaped);
    if (detail::iequals_none(alg_name)) return auth_errc::unsecured_token;
    const auto alg = parse_jwt_algorithm(alg_name);
    if (!alg) return auth_errc::unsupported_algorithm;
    if (h.crit) return auth_errc::unsupported_critical_header;
    std::optional<std::string> kid;
    if (h.kid) {
        if (h.kid->type != detail::json::kind::string) return auth_errc::header_parameter_wrong_type;
        kid = detail::json::unescape(h.kid->raw, h.kid->escaped);
    }
    if (h.typ && h.typ->type != detail::json::kind::string) return auth_errc::header_parameter_wrong_type;

    // --- signature ---
    if (signature_b64.empty()) return auth_errc::missing_signature;
    // RSA-8192 signatures are 1024 bytes; nothing longer is a signature.
    unsigned char signature[1024];
    if (detail::base64url_decoded_size(signature_b64.size()) > sizeof signature) return auth_errc::malformed_signature;
    if (auto ec = detail::base64url_decode(signature_b64, signature)) return ec;
    const std::size_t signature_size = detail::base64url_decoded_size(signature_b64.size());
    const std::string_view signing_input = token.substr(0, dot2);

    const auto now = options_.clock();
    const auto snapshot = keys_.load();
    if (!snapshot) return auth_errc::no_keys;
    const bool grace = !snapshot->previous.empty() && now < snapshot->previous_until;

    const std::string* kid_ptr = kid ? &*kid : nullptr;
    const verification_key* key = nullptr;
    std::error_code ec = detail::select_key(snapshot->current, kid_ptr, *alg, key);
    if (!ec) ec = verify_jws_signature(*key, *alg, signing_input, signature, signature_size);
    if (ec && grace) {
        // Tokens signed with the previous key set, during its grace period.
        // A kid found in the new set never falls back.
        const bool kid_in_current = kid_ptr != nullptr && key != nullptr;
        const verification_key* old_key = nullptr;
        if (!kid_in_current && !detail::select_key(snapshot->previous, kid_ptr, *alg, old_key) &&
            !verify_jws_signature(*old_key, *alg, signing_input, signature, signature_size))
            ec.clear();
    }
    if (ec) return ec;

    // --- payload: validated completely, read without building a DOM ---
    std::string payload_text;
    if (auto pec = detail::base64url_decode(payload_b64, payload_text)) return pec;
    detail::claim_fields c;
    const auto& o = options_;
    const auto payload_scan = detail::json::scanner(payload_text, o.max_json_depth)
                                  .top_object([&c, &o](std::string_view key, bool escaped, const detail::json::value& v) {
                                      const std::string unescaped = escaped ? detail::json::unescape(key, true) : std::string();
                                      const std::string_view k = escaped ? std::string_view(unescaped) : key;
                                      // A repeated name never gets here: the scan refuses it.
                                      if (k == "exp") c.exp = v;
                                      else if (k == "nbf") c.nbf = v;
                                      else if (k == "iat") c.iat = v;
                                      else if (k == "iss") c.iss = v;
                                      else if (k == "aud") c.aud = v;
                                      else if (k == "jti") c.jti = v;
                                      if (k == o.subject_claim) c.subject = v;
                                      if (k == o.session_key_claim) c.session_key = v;
                                      if (k == o.roles_claim) c.roles = v;
                                      if (k == o.permissions_claim) c.permissions = v;
                                      if (!o.scope_claim.empty() && k == o.scope_claim) c.scope = v;
                                      for (std::size_t i = 0; i < o.required_claims.size(); ++i)
                                          if (k == o.required_claims[i]) c.required_seen |= std::uint64_t{1} << i;
                                  });
    if (auto pec = detail::scan_error(payload_scan, auth_errc::payload_not_json, auth_errc::payload_not_object,
                                      auth_errc::payload_duplicate_member))
        return pec;
    identity id;
    if (auto cec = check_claims(c, now, id)) return cec;
    id.claims = std::make_shared<const claim_set>(std::move(payload_text));
    out = std::move(id);
    return {};
}

GATEHOUSE_DECL std::error_code jwt_validator::check_claims(const detail::claim_fields& c,
                                                           std::chrono::system_clock::time_point now,
                                                           identity& id) const {
    using clock = std::chrono::system_clock;
    const auto leeway = std::chrono::duration_cast<clock::duration>(options_.leeway);

    // Time claims first: an expired token is "expired" whatever else is wrong.
    std::optional<clock::time_point> exp;
    std::optional<clock::time_point> nbf;
    std::optional<clock::time_point> iat;
    for (auto [field, slot] : {std::pair{&c.exp, &exp}, std::pair{&c.nbf, &nbf}, std::pair{&c.iat, &iat}}) {
        if (!*field) continue;
        clock::time_point t;
        if (auto ec = detail::numeric_date(**field, t)) return ec;
        *slot = t;
    }
    if (!exp && options_.require_expiration) return auth_errc::expiration_missing;
    if (exp && now - leeway >= *exp) return auth_errc::token_expired;
    if (nbf && now + leeway < *nbf) return auth_errc::token_not_yet_valid;
    if (iat && *iat > now + leeway) return auth_errc::issued_in_future;
    if (options_.max_age) {
        if (!iat) return auth_errc::missing_required_claim;
        if (now - leeway - std::chrono::duration_cast<clock::duration>(*options_.max_age) > *iat)
            return auth_errc::token_too_old;
    }

    // Issuer and audience.
    if (auto ec = detail::string_claim(c.iss, id.issuer)) return ec;
    if (!options_.issuers.empty()) {
        if (!c.iss) return auth_errc::issuer_missing;
        if (!detail::contains(options_.issuers, id.issuer)) return auth_errc::issuer_mismatch;
    }
    if (!options_.audiences.empty()) {
        if (!c.aud) return auth_errc::audience_missing;
        bool match = false;
        if (c.aud->type == detail::json::kind::string) {
            match = detail::contains(options_.audiences, detail::json::unescape(c.aud->raw, c.aud->escaped));
        } else if (c.aud->type == detail::json::kind::array) {
            const bool all_strings = detail::json::scanner::string_elements(
                c.aud->raw, [&](std::string_view raw, bool escaped) {
                    match = match || detail::contains(options_.audiences, detail::json::unescape(raw, escaped));
                });
            if (!all_strings) return auth_errc::claim_wrong_type;
        } else {
            return auth_errc::claim_wrong_type;
        }
        if (!match) return auth_errc::audience_mismatch;
    }
    const std::uint64_t all_required =
        options_.required_claims.size() >= 64 ? ~std::uint64_t{0}
                                              : (std::uint64_t{1} << options_.required_claims.size()) - 1;
    if ((c.required_seen & all_required) != all_required) return auth_errc::missing_required_claim;

    // What the identity carries.
    if (auto ec = detail::string_claim(c.subject, id.subject)) return ec;
    if (options_.require_subject && id.subject.empty()) return auth_errc::subject_missing;
    if (auto ec = detail::string_claim(c.session_key, id.session_key)) return ec;
    if (options_.require_session_key && id.session_key.empty()) return auth_errc::session_key_missing;
    if (auto ec = detail::string_claim(c.jti, id.token_id)) return ec;
    if (c.roles)
        if (auto ec = detail::string_list(*c.roles, id.roles)) return ec;
    if (c.permissions)
        if (auto ec = detail::string_list(*c.permissions, id.permissions)) return ec;
    if (c.scope)
        if (auto ec = detail::scope_list(*c.scope, id.permissions)) return ec;
    id.expires_at = exp;
    // The same rule afterwards as here: valid while now < exp + leeway.
    id.expiry_leeway = options_.leeway;
    return {};
}

}  // namespace gatehouse::auth
