// Implementation of gatehouse/auth/jwt_signer.hpp.
#pragma once

#include <gatehouse/auth/detail/base64url.hpp>
#include <gatehouse/auth/detail/openssl.hpp>
#include <gatehouse/auth/jwt_signer.hpp>

#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include <new>
#include <vector>

namespace gatehouse::auth {

GATEHOUSE_DECL signing_key::~signing_key() {
    OPENSSL_cleanse(secret_.data(), secret_.size());
    EVP_PKEY_free(pkey_);
}

struct signing_key_factory {
    static const std::string& secret(const signing_key& k) noexcept { return k.secret_; }
    static EVP_PKEY* pkey(const signing_key& k) noexcept { return k.pkey_; }

    static std::error_code hmac(std::string_view secret, std::string key_id, signing_key_ptr& out) {
        if (secret.empty()) return auth_errc::invalid_key_material;
        if (secret.size() < 32) return auth_errc::key_too_weak;
        std::shared_ptr<signing_key> key(new signing_key());
        key->key_id_ = std::move(key_id);
        key->type_ = key_type::oct;
        key->secret_.assign(secret.data(), secret.size());
        out = std::move(key);
        return {};
    }

    static std::error_code pem(std::string_view pem, std::string key_id, signing_key_ptr& out) {
        if (pem.empty() || pem.size() > 1024 * 1024) return auth_errc::invalid_pem;
        EVP_PKEY* raw = nullptr;
        OSSL_DECODER_CTX* dctx =
            OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", nullptr, nullptr, EVP_PKEY_KEYPAIR, nullptr, nullptr);
        if (dctx == nullptr) return auth_errc::crypto_failure;
        const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
        std::size_t len = pem.size();
        const int ok = OSSL_DECODER_from_data(dctx, &data, &len);
        OSSL_DECODER_CTX_free(dctx);
        ERR_clear_error();
        detail::pkey_ptr pkey(raw);
        if (ok != 1 || !pkey) return auth_errc::invalid_pem;

        // Reuse the verification-side classification (type, curve, strength).
        EVP_PKEY* shared = pkey.get();
        if (EVP_PKEY_up_ref(shared) != 1) return auth_errc::crypto_failure;
        key_ptr probe;
        if (auto ec = key_factory::from_pkey(detail::pkey_ptr(shared), {}, {}, probe)) return ec;

        std::shared_ptr<signing_key> key(new signing_key());
        key->key_id_ = std::move(key_id);
        key->type_ = probe->type();
        key->pkey_ = pkey.release();
        out = std::move(key);
        return {};
    }
};

GATEHOUSE_DECL std::error_code make_hmac_signing_key(std::string_view secret, std::string key_id,
                                                     signing_key_ptr& out) {
    try {
        return signing_key_factory::hmac(secret, std::move(key_id), out);
    } catch (...) {
        return auth_errc::crypto_failure;
    }
}

GATEHOUSE_DECL std::error_code load_private_key_pem(std::string_view pem, std::string key_id, signing_key_ptr& out) {
    try {
        return signing_key_factory::pem(pem, std::move(key_id), out);
    } catch (...) {
        return auth_errc::crypto_failure;
    }
}

GATEHOUSE_DECL std::error_code sign_jws(const signing_key& key, jwt_algorithm alg, std::string_view signing_input,
                                        std::string& signature_b64) {
    if (required_key_type(alg) != key.type()) return auth_errc::key_type_mismatch;
    const std::string& secret = signing_key_factory::secret(key);
    const auto* input = reinterpret_cast<const unsigned char*>(signing_input.data());

    if (detail::is_hmac(alg)) {
        const int bits = detail::hash_bits(alg);
        if (secret.size() * 8 < static_cast<std::size_t>(bits)) return auth_errc::key_too_weak;
        detail::mac_ctx_ptr ctx(EVP_MAC_CTX_new(detail::hmac()));
        OSSL_PARAM params[2] = {
            OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>(detail::sha_name(bits)), 0),
            OSSL_PARAM_construct_end()};
        unsigned char mac[EVP_MAX_MD_SIZE];
        std::size_t mac_size = 0;
        if (!ctx ||
            EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                         params) != 1 ||
            EVP_MAC_update(ctx.get(), input, signing_input.size()) != 1 ||
            EVP_MAC_final(ctx.get(), mac, &mac_size, sizeof mac) != 1) {
            ERR_clear_error();
            return auth_errc::crypto_failure;
        }
        detail::base64url_encode(mac, mac_size, signature_b64);
        return {};
    }

    detail::md_ctx_ptr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    const EVP_MD* md = alg == jwt_algorithm::eddsa ? nullptr : detail::sha(detail::hash_bits(alg));
    std::size_t size = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, signing_key_factory::pkey(key)) != 1 ||
        (detail::is_rsa_pss(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) ||
        EVP_DigestSign(ctx.get(), nullptr, &size, input, signing_input.size()) != 1) {
        ERR_clear_error();
        return auth_errc::crypto_failure;
    }
    std::vector<unsigned char> sig(size);
    if (EVP_DigestSign(ctx.get(), sig.data(), &size, input, signing_input.size()) != 1) {
        ERR_clear_error();
        return auth_errc::crypto_failure;
    }
    sig.resize(size);
    if (detail::is_ecdsa(alg)) {
        const unsigned char* p = sig.data();
        ECDSA_SIG* der = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        if (der == nullptr) {
            ERR_clear_error();
            return auth_errc::crypto_failure;
        }
        const int half = static_cast<int>(detail::ecdsa_component_size(alg));
        std::vector<unsigned char> jose(static_cast<std::size_t>(2 * half));
        const bool ok = BN_bn2binpad(ECDSA_SIG_get0_r(der), jose.data(), half) == half &&
                        BN_bn2binpad(ECDSA_SIG_get0_s(der), jose.data() + half, half) == half;
        ECDSA_SIG_free(der);
        if (!ok) return auth_errc::crypto_failure;
        sig = std::move(jose);
    }
    detail::base64url_encode(sig.data(), sig.size(), signature_b64);
    return {};
}

GATEHOUSE_DECL std::error_code sign_jwt(const nlohmann::json& claims, const signing_key& key, jwt_algorithm alg,
                                        std::string& out) {
    try {
        nlohmann::json header = {{"alg", std::string(to_string(alg))}, {"typ", "JWT"}};
        if (!key.key_id().empty()) header["kid"] = key.key_id();
        std::string token = detail::base64url_encode(header.dump());
        token += '.';
        token += detail::base64url_encode(claims.dump());
        std::string signature;
        if (auto ec = sign_jws(key, alg, token, signature)) return ec;
        token += '.';
        token += signature;
        out = std::move(token);
        return {};
    } catch (const nlohmann::json::exception&) {
        return auth_errc::claim_wrong_type;  // claims with invalid UTF-8 cannot be serialized
    } catch (...) {
        return auth_errc::crypto_failure;
    }
}

}  // namespace gatehouse::auth
