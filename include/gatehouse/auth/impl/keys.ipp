// Implementation of gatehouse/auth/keys.hpp.
#pragma once

#include <gatehouse/auth/detail/base64url.hpp>
#include <gatehouse/auth/detail/openssl.hpp>
#include <gatehouse/auth/keys.hpp>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace gatehouse::auth {

GATEHOUSE_DECL verification_key::~verification_key() {
    EVP_PKEY_free(pkey_);
    for (auto* m : hmac_) EVP_MAC_CTX_free(m);
}

GATEHOUSE_DECL EVP_MAC_CTX* verification_key::native_hmac_template(jwt_algorithm a) const noexcept {
    switch (a) {
    case jwt_algorithm::hs256: return hmac_[0];
    case jwt_algorithm::hs384: return hmac_[1];
    case jwt_algorithm::hs512: return hmac_[2];
    default: return nullptr;
    }
}

// Builds verification_key objects; the only code allowed to touch their
// internals.
struct key_factory {
    // Takes ownership of `pkey`.
    static std::error_code from_pkey(detail::pkey_ptr pkey, std::string key_id, algorithm_set allowed, key_ptr& out) {
        key_type type;
        int bits = EVP_PKEY_get_bits(pkey.get());
        if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
            type = key_type::rsa;
            if (bits < 2048) return auth_errc::key_too_weak;
        } else if (EVP_PKEY_is_a(pkey.get(), "EC")) {
            char group[64] = {0};
            std::size_t len = 0;
            if (EVP_PKEY_get_group_name(pkey.get(), group, sizeof group, &len) != 1) {
                ERR_clear_error();
                return auth_errc::unsupported_key_type;
            }
            const std::string_view g(group, len);
            if (g == "prime256v1" || g == "P-256") type = key_type::ec_p256;
            else if (g == "secp384r1" || g == "P-384") type = key_type::ec_p384;
            else if (g == "secp521r1" || g == "P-521") type = key_type::ec_p521;
            else return auth_errc::unsupported_key_type;
        } else if (EVP_PKEY_is_a(pkey.get(), "ED25519")) {
            type = key_type::ed25519;
        } else {
            return auth_errc::unsupported_key_type;
        }
        const algorithm_set supported = algorithms_for(type);
        if (allowed.empty()) allowed = supported;
        if ((allowed & supported) != allowed) return auth_errc::key_type_mismatch;

        std::shared_ptr<verification_key> key(new verification_key());
        key->key_id_ = std::move(key_id);
        key->type_ = type;
        key->allowed_ = allowed;
        key->bits_ = bits;
        key->pkey_ = pkey.release();
        out = std::move(key);
        return {};
    }

    static std::error_code from_secret(std::string_view secret, std::string key_id, algorithm_set allowed, key_ptr& out) {
        if (secret.empty()) return auth_errc::invalid_key_material;
        const algorithm_set hs = algorithms_for(key_type::oct);
        if ((allowed & hs) != allowed) return auth_errc::key_type_mismatch;
        // RFC 7518 §3.2: a key at least as long as the hash output.
        if (secret.size() < 32) return auth_errc::key_too_weak;
        algorithm_set strong_enough{jwt_algorithm::hs256};
        if (secret.size() >= 48) strong_enough.insert(jwt_algorithm::hs384);
        if (secret.size() >= 64) strong_enough.insert(jwt_algorithm::hs512);
        if (allowed.empty()) allowed = strong_enough;
        if ((allowed & strong_enough) != allowed) return auth_errc::key_too_weak;
        if (detail::hmac() == nullptr) return auth_errc::crypto_failure;

        std::shared_ptr<verification_key> key(new verification_key());
        const jwt_algorithm hs_algs[3] = {jwt_algorithm::hs256, jwt_algorithm::hs384, jwt_algorithm::hs512};
        for (int i = 0; i < 3; ++i) {
            if (!allowed.contains(hs_algs[i])) continue;
            detail::mac_ctx_ptr ctx(EVP_MAC_CTX_new(detail::hmac()));
            if (!ctx) return auth_errc::crypto_failure;
            OSSL_PARAM params[2] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 const_cast<char*>(detail::sha_name(detail::hash_bits(hs_algs[i]))), 0),
                OSSL_PARAM_construct_end()};
            if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), params) != 1) {
                ERR_clear_error();
                return auth_errc::crypto_failure;
            }
            key->hmac_[i] = ctx.release();
        }
        key->key_id_ = std::move(key_id);
        key->type_ = key_type::oct;
        key->allowed_ = allowed;
        key->bits_ = static_cast<int>(secret.size() * 8);
        out = std::move(key);
        return {};
    }
};

GATEHOUSE_DECL std::error_code make_hmac_key(std::string_view secret, std::string key_id, algorithm_set allowed,
                                             key_ptr& out) {
    return key_factory::from_secret(secret, std::move(key_id), allowed, out);
}

GATEHOUSE_DECL std::error_code load_public_key_pem(std::string_view pem, std::string key_id, algorithm_set allowed,
                                                   key_ptr& out) {
    if (pem.empty() || pem.size() > 1024 * 1024) return auth_errc::invalid_pem;
    detail::pkey_ptr pkey;
    if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
        BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        if (bio == nullptr) return auth_errc::crypto_failure;
        X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        BIO_free(bio);
        if (cert != nullptr) {
            pkey.reset(X509_get_pubkey(cert));
            X509_free(cert);
        }
    } else {
        EVP_PKEY* raw = nullptr;
        OSSL_DECODER_CTX* dctx =
            OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", nullptr, nullptr, EVP_PKEY_PUBLIC_KEY, nullptr, nullptr);
        if (dctx == nullptr) return auth_errc::crypto_failure;
        const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
        std::size_t len = pem.size();
        const int ok = OSSL_DECODER_from_data(dctx, &data, &len);
        OSSL_DECODER_CTX_free(dctx);
        if (ok == 1) pkey.reset(raw);
        else EVP_PKEY_free(raw);
    }
    ERR_clear_error();
    if (!pkey) return auth_errc::invalid_pem;
    return key_factory::from_pkey(std::move(pkey), std::move(key_id), allowed, out);
}

namespace detail {

inline std::error_code jwk_string(const nlohmann::json& jwk, const char* name, const std::string*& out) {
    const auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) return auth_errc::jwk_malformed;
    out = &it->get_ref<const std::string&>();
    return {};
}

inline std::error_code jwk_bytes(const nlohmann::json& jwk, const char* name, std::string& out) {
    const std::string* text = nullptr;
    if (auto ec = jwk_string(jwk, name, text)) return ec;
    if (text->empty()) return auth_errc::invalid_key_material;
    if (base64url_decode(*text, out)) return auth_errc::invalid_key_material;
    return {};
}

inline std::error_code rsa_from_jwk(const nlohmann::json& jwk, pkey_ptr& out) {
    std::string n;
    std::string e;
    if (auto ec = jwk_bytes(jwk, "n", n)) return ec;
    if (auto ec = jwk_bytes(jwk, "e", e)) return ec;
    bignum_ptr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
    bignum_ptr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
    if (!bn_n || !bn_e) return auth_errc::crypto_failure;
    // OpenSSL's public check accepts any odd exponent; 1 makes the "signature"
    // equal to the message.
    if (BN_is_one(bn_e.get()) || !BN_is_odd(bn_e.get())) return auth_errc::invalid_key_material;
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    if (bld == nullptr) return auth_errc::crypto_failure;
    OSSL_PARAM* params = nullptr;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) == 1)
        params = OSSL_PARAM_BLD_to_param(bld);
    OSSL_PARAM_BLD_free(bld);
    if (params == nullptr) return auth_errc::crypto_failure;
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY* raw = nullptr;
    const bool ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
                    EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) == 1;
    OSSL_PARAM_free(params);
    ERR_clear_error();
    if (!ok) return auth_errc::invalid_key_material;
    out.reset(raw);
    return {};
}

inline std::error_code ec_from_jwk(const nlohmann::json& jwk, pkey_ptr& out) {
    const std::string* crv = nullptr;
    if (auto ec = jwk_string(jwk, "crv", crv)) return ec;
    const char* group = nullptr;
    std::size_t size = 0;
    if (*crv == "P-256") group = "prime256v1", size = 32;
    else if (*crv == "P-384") group = "secp384r1", size = 48;
    else if (*crv == "P-521") group = "secp521r1", size = 66;
    else return auth_errc::unsupported_key_type;
    std::string x;
    std::string y;
    if (auto ec = jwk_bytes(jwk, "x", x)) return ec;
    if (auto ec = jwk_bytes(jwk, "y", y)) return ec;
    // RFC 7518 §6.2.1.2 asks for the full coordinate length, leading zeros
    // included; some issuers (PyJWT before 2.7, for one) drop leading zero
    // bytes. The integer is the same, so restore them; longer is an error.
    if (x.empty() || y.empty() || x.size() > size || y.size() > size) return auth_errc::invalid_key_material;
    x.insert(0, size - x.size(), '\0');
    y.insert(0, size - y.size(), '\0');
    std::string point;
    point.reserve(1 + 2 * size);
    point += '\x04';
    point += x;
    point += y;
    OSSL_PARAM params[3] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
        OSSL_PARAM_construct_end()};
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    EVP_PKEY* raw = nullptr;
    bool ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
              EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) == 1;
    pkey_ptr pkey(raw);
    if (ok) {
        // A point off the curve must never become a key.
        pkey_ctx_ptr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
        ok = check && EVP_PKEY_public_check(check.get()) == 1;
    }
    ERR_clear_error();
    if (!ok) return auth_errc::invalid_key_material;
    out = std::move(pkey);
    return {};
}

inline std::error_code okp_from_jwk(const nlohmann::json& jwk, pkey_ptr& out) {
    const std::string* crv = nullptr;
    if (auto ec = jwk_string(jwk, "crv", crv)) return ec;
    if (*crv != "Ed25519") return auth_errc::unsupported_key_type;
    std::string x;
    if (auto ec = jwk_bytes(jwk, "x", x)) return ec;
    if (x.size() != 32) return auth_errc::invalid_key_material;
    EVP_PKEY* raw = EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr,
                                                   reinterpret_cast<const unsigned char*>(x.data()), x.size());
    ERR_clear_error();
    if (raw == nullptr) return auth_errc::invalid_key_material;
    out.reset(raw);
    return {};
}

}  // namespace detail

GATEHOUSE_DECL std::error_code load_jwk(const nlohmann::json& jwk, const jwk_options& options, key_ptr& out) {
    if (!jwk.is_object()) return auth_errc::jwk_malformed;
    const std::string* kty = nullptr;
    if (auto ec = detail::jwk_string(jwk, "kty", kty)) return ec;

    std::string key_id;
    if (const auto kid = jwk.find("kid"); kid != jwk.end()) {
        if (!kid->is_string()) return auth_errc::jwk_malformed;
        key_id = kid->get<std::string>();
    }
    algorithm_set allowed = options.allowed;
    if (const auto alg = jwk.find("alg"); alg != jwk.end()) {
        if (!alg->is_string()) return auth_errc::jwk_malformed;
        const auto a = parse_jwt_algorithm(alg->get_ref<const std::string&>());
        if (!a) return auth_errc::unsupported_algorithm;
        allowed = allowed & algorithm_set{*a};
    }

    if (*kty == "oct") {
        if (!options.accept_symmetric) return auth_errc::unsupported_key_type;
        std::string secret;
        if (auto ec = detail::jwk_bytes(jwk, "k", secret)) return ec;
        const algorithm_set hs = algorithms_for(key_type::oct);
        if (jwk.contains("alg") && (allowed & hs) != allowed) return auth_errc::jwk_algorithm_mismatch;
        // Without "alg": every HS algorithm the secret is strong enough for.
        algorithm_set wanted = allowed & hs;
        if (wanted.empty()) {
            OPENSSL_cleanse(secret.data(), secret.size());
            return auth_errc::jwk_algorithm_mismatch;
        }
        if (!jwk.contains("alg")) {
            algorithm_set strong{jwt_algorithm::hs256};
            if (secret.size() >= 48) strong.insert(jwt_algorithm::hs384);
            if (secret.size() >= 64) strong.insert(jwt_algorithm::hs512);
            wanted = wanted & strong;
        }
        if (wanted.empty()) {
            OPENSSL_cleanse(secret.data(), secret.size());
            return auth_errc::key_too_weak;
        }
        const auto ec = key_factory::from_secret(secret, std::move(key_id), wanted, out);
        OPENSSL_cleanse(secret.data(), secret.size());
        return ec;
    }

    detail::pkey_ptr pkey;
    std::error_code ec;
    if (*kty == "RSA") ec = detail::rsa_from_jwk(jwk, pkey);
    else if (*kty == "EC") ec = detail::ec_from_jwk(jwk, pkey);
    else if (*kty == "OKP") ec = detail::okp_from_jwk(jwk, pkey);
    else return auth_errc::unsupported_key_type;
    if (ec) return ec;

    // Resolve the allowed set against the key's actual type.
    key_ptr probe;
    if (auto type_ec = key_factory::from_pkey(std::move(pkey), std::move(key_id), algorithm_set{}, probe)) return type_ec;
    const algorithm_set supported = algorithms_for(probe->type());
    if (jwk.contains("alg") && (allowed & supported) != allowed) return auth_errc::jwk_algorithm_mismatch;
    const algorithm_set wanted = allowed & supported;
    if (wanted.empty()) return auth_errc::jwk_algorithm_mismatch;
    if (wanted == probe->allowed_algorithms()) {
        out = std::move(probe);
        return {};
    }
    // Same key, narrower algorithm set: share the EVP_PKEY.
    EVP_PKEY* shared = probe->native_public_key();
    if (EVP_PKEY_up_ref(shared) != 1) return auth_errc::crypto_failure;
    return key_factory::from_pkey(detail::pkey_ptr(shared), probe->key_id(), wanted, out);
}

GATEHOUSE_DECL std::error_code key_set::add(key_ptr key) {
    if (!key) return auth_errc::invalid_key_material;
    if (!key->key_id().empty() && find(key->key_id()) != nullptr) return auth_errc::duplicate_key_id;
    keys_.push_back(std::move(key));
    return {};
}

GATEHOUSE_DECL const verification_key* key_set::find(std::string_view kid) const noexcept {
    for (const auto& k : keys_)
        if (k->key_id() == kid) return k.get();
    return nullptr;
}

GATEHOUSE_DECL std::error_code parse_jwks(std::string_view document, key_set& out, const jwks_options& options) {
    try {
        if (document.size() > options.max_document_size) return auth_errc::jwks_too_large;
        // Keys are objects inside an array inside the document: depth 3. Some
        // members (x5c) add one more; anything deeper is not a JWKS.
        if (detail::json_nesting_depth(document, 8) > 8) return auth_errc::jwks_malformed;
        // nlohmann keeps the last of repeated names; a key with two "kid",
        // "n" or "k" (or a document with two "keys") is refused instead, so
        // what is verified with is never a matter of member order. The names
        // of each open object are kept while it is parsed.
        std::vector<std::set<std::string, std::less<>>> open_objects;
        bool duplicate = false;
        const auto doc = nlohmann::json::parse(
            document.begin(), document.end(),
            [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
                using event_t = nlohmann::json::parse_event_t;
                if (event == event_t::object_start) {
                    open_objects.emplace_back();
                } else if (event == event_t::object_end) {
                    if (!open_objects.empty()) open_objects.pop_back();
                } else if (event == event_t::key && !open_objects.empty()) {
                    if (!open_objects.back().insert(parsed.get_ref<const std::string&>()).second) duplicate = true;
                }
                return true;
            },
            false);
        if (doc.is_discarded()) return auth_errc::jwks_not_json;
        if (duplicate) return auth_errc::jwks_duplicate_member;
        if (!doc.is_object()) return auth_errc::jwks_malformed;
        const auto keys = doc.find("keys");
        if (keys == doc.end() || !keys->is_array()) return auth_errc::jwks_malformed;
        if (keys->size() > options.max_keys) return auth_errc::jwks_too_large;

        key_set result;
        for (const auto& jwk : *keys) {
            if (!jwk.is_object()) return auth_errc::jwk_malformed;
            const auto kty = jwk.find("kty");
            if (kty == jwk.end() || !kty->is_string()) return auth_errc::jwk_malformed;
            const auto& kty_s = kty->get_ref<const std::string&>();
            if (kty_s != "RSA" && kty_s != "EC" && kty_s != "OKP" && kty_s != "oct") continue;
            if (kty_s == "oct" && !options.key.accept_symmetric) continue;
            if (const auto use = jwk.find("use"); use != jwk.end()) {
                if (!use->is_string()) return auth_errc::jwk_malformed;
                if (use->get_ref<const std::string&>() != "sig") continue;
            }
            if (const auto ops = jwk.find("key_ops"); ops != jwk.end()) {
                if (!ops->is_array()) return auth_errc::jwk_malformed;
                bool verify = false;
                for (const auto& op : *ops) {
                    if (!op.is_string()) return auth_errc::jwk_malformed;
                    verify = verify || op.get_ref<const std::string&>() == "verify";
                }
                if (!verify) continue;
            }
            if (const auto alg = jwk.find("alg"); alg != jwk.end()) {
                if (!alg->is_string()) return auth_errc::jwk_malformed;
                const auto a = parse_jwt_algorithm(alg->get_ref<const std::string&>());
                if (!a) continue;  // an encryption algorithm, or one we do not implement
                if (!options.key.allowed.contains(*a)) continue;
            }
            if (const auto crv = jwk.find("crv"); crv != jwk.end() && crv->is_string()) {
                const auto& c = crv->get_ref<const std::string&>();
                // Curves JOSE defines that gatehouse does not verify with.
                if (kty_s == "OKP" && c != "Ed25519") continue;
                if (kty_s == "EC" && c == "secp256k1") continue;
            }
            // A key whose type has no algorithm left after the host's
            // restriction is not usable here: skip it, do not fail.
            key_ptr key;
            const auto ec = load_jwk(jwk, options.key, key);
            if (ec == auth_errc::jwk_algorithm_mismatch && !jwk.contains("alg")) continue;
            if (ec) return ec;
            if (auto add_ec = result.add(std::move(key))) return add_ec;
        }
        out = std::move(result);
        return {};
    } catch (const std::bad_alloc&) {
        return auth_errc::crypto_failure;
    } catch (...) {
        return auth_errc::internal_error;
    }
}

}  // namespace gatehouse::auth
