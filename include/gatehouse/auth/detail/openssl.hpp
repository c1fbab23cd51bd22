// Small OpenSSL 3 helpers shared by the auth implementation files: owning
// pointers and algorithms fetched once per process (fetching by name on every
// call costs a lock and a lookup inside OpenSSL).
#pragma once

#include <gatehouse/auth/algorithm.hpp>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>

namespace gatehouse::auth::detail {

struct evp_pkey_free_fn { void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); } };
struct evp_pkey_ctx_free_fn { void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); } };
struct evp_md_ctx_free_fn { void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); } };
struct evp_mac_ctx_free_fn { void operator()(EVP_MAC_CTX* p) const noexcept { EVP_MAC_CTX_free(p); } };
struct bignum_free_fn { void operator()(BIGNUM* p) const noexcept { BN_free(p); } };

using pkey_ptr = std::unique_ptr<EVP_PKEY, evp_pkey_free_fn>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, evp_pkey_ctx_free_fn>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, evp_md_ctx_free_fn>;
using mac_ctx_ptr = std::unique_ptr<EVP_MAC_CTX, evp_mac_ctx_free_fn>;
using bignum_ptr = std::unique_ptr<BIGNUM, bignum_free_fn>;

/// SHA-256/384/512, fetched once and kept for the life of the process.
inline const EVP_MD* sha(int bits) noexcept {
    static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    static EVP_MD* const sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
    static EVP_MD* const sha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
    return bits == 256 ? sha256 : bits == 384 ? sha384 : sha512;
}

inline EVP_MAC* hmac() noexcept {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

/// The hash size in bits an algorithm uses (EdDSA: 0, it hashes internally).
inline int hash_bits(jwt_algorithm a) noexcept {
    switch (a) {
    case jwt_algorithm::hs256:
    case jwt_algorithm::rs256:
    case jwt_algorithm::ps256:
    case jwt_algorithm::es256: return 256;
    case jwt_algorithm::hs384:
    case jwt_algorithm::rs384:
    case jwt_algorithm::ps384:
    case jwt_algorithm::es384: return 384;
    case jwt_algorithm::hs512:
    case jwt_algorithm::rs512:
    case jwt_algorithm::ps512:
    case jwt_algorithm::es512: return 512;
    case jwt_algorithm::eddsa: return 0;
    }
    return 0;
}

inline const char* sha_name(int bits) noexcept {
    return bits == 256 ? "SHA256" : bits == 384 ? "SHA384" : "SHA512";
}

/// Size of r and of s in a JOSE ECDSA signature (RFC 7518 §3.4).
inline std::size_t ecdsa_component_size(jwt_algorithm a) noexcept {
    return a == jwt_algorithm::es256 ? 32 : a == jwt_algorithm::es384 ? 48 : 66;
}

inline bool is_hmac(jwt_algorithm a) noexcept { return required_key_type(a) == key_type::oct; }
inline bool is_ecdsa(jwt_algorithm a) noexcept {
    return a == jwt_algorithm::es256 || a == jwt_algorithm::es384 || a == jwt_algorithm::es512;
}
inline bool is_rsa_pss(jwt_algorithm a) noexcept {
    return a == jwt_algorithm::ps256 || a == jwt_algorithm::ps384 || a == jwt_algorithm::ps512;
}

/// DER length prefix.
inline void der_append_length(std::size_t n, unsigned char*& p) noexcept {
    if (n < 0x80) {
        *p++ = static_cast<unsigned char>(n);
    } else {
        *p++ = 0x81;
        *p++ = static_cast<unsigned char>(n);
    }
}

/// Converts a JOSE r||s ECDSA signature (each half `half` bytes, at most 66)
/// into the DER SEQUENCE { INTEGER r, INTEGER s } that EVP expects. `out`
/// needs 2 * (half + 1) + 9 bytes; returns the DER size.
inline std::size_t ecdsa_jose_to_der(const unsigned char* sig, std::size_t half, unsigned char* out) noexcept {
    auto integer_size = [](const unsigned char* v, std::size_t n, std::size_t& skip) {
        skip = 0;
        while (skip + 1 < n && v[skip] == 0) ++skip;
        return n - skip + ((v[skip] & 0x80) ? 1 : 0);
    };
    std::size_t r_skip = 0;
    std::size_t s_skip = 0;
    const std::size_t r_len = integer_size(sig, half, r_skip);
    const std::size_t s_len = integer_size(sig + half, half, s_skip);
    const std::size_t body = 2 + r_len + (r_len >= 0x80 ? 1 : 0) + 2 + s_len + (s_len >= 0x80 ? 1 : 0);
    unsigned char* p = out;
    *p++ = 0x30;
    der_append_length(body, p);
    auto put_integer = [&p](const unsigned char* v, std::size_t n, std::size_t skip, std::size_t len) {
        *p++ = 0x02;
        der_append_length(len, p);
        if (len > n - skip) *p++ = 0x00;
        for (std::size_t i = skip; i < n; ++i) *p++ = v[i];
    };
    put_integer(sig, half, r_skip, r_len);
    put_integer(sig + half, half, s_skip, s_len);
    return static_cast<std::size_t>(p - out);
}

}  // namespace gatehouse::auth::detail
