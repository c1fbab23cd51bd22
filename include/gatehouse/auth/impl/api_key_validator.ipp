// Implementation of gatehouse/auth/api_key_validator.hpp.
#pragma once

#include <gatehouse/auth/api_key_validator.hpp>
#include <gatehouse/auth/detail/openssl.hpp>

#include <openssl/crypto.h>

#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>

namespace gatehouse::auth {

GATEHOUSE_DECL std::optional<api_key_hash> hash_api_key(std::string_view key) noexcept {
    api_key_hash out{};
    unsigned int size = 0;
    if (detail::sha(256) == nullptr ||
        EVP_Digest(key.data(), key.size(), out.data(), &size, detail::sha(256), nullptr) != 1 || size != out.size()) {
        ERR_clear_error();
        return std::nullopt;
    }
    return out;
}

GATEHOUSE_DECL std::optional<api_key_hash> parse_api_key_hash(std::string_view hex) noexcept {
    if (hex.size() != 64) return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    api_key_hash out{};
    for (std::size_t i = 0; i < 32; ++i) {
        const int hi = nibble(hex[2 * i]);
        const int lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return out;
}

GATEHOUSE_DECL std::string to_hex(const api_key_hash& hash) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (const auto b : hash) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

GATEHOUSE_DECL bool api_key_validator::constant_time_equal::operator()(const api_key_hash& a,
                                                                       const api_key_hash& b) const noexcept {
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

GATEHOUSE_DECL api_key_validator::api_key_validator(api_key_options options) : options_(std::move(options)) {
    if (options_.max_key_size == 0) throw std::invalid_argument("api_key_options: max_key_size must be positive");
    if (!options_.clock) throw std::invalid_argument("api_key_options: clock must be set");
}

GATEHOUSE_DECL std::error_code api_key_validator::add(std::string_view key, identity id) {
    if (key.empty()) return auth_errc::empty_credential;
    if (key.size() > options_.max_key_size) return auth_errc::api_key_too_large;
    for (const char c : key) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return auth_errc::malformed_credential;
    }
    const auto hash = hash_api_key(key);
    if (!hash) return auth_errc::crypto_failure;
    add_hash(*hash, std::move(id));
    return {};
}

GATEHOUSE_DECL void api_key_validator::add_hash(const api_key_hash& hash, identity id) {
    auto shared = std::make_shared<const identity>(std::move(id));
    std::unique_lock lock(mutex_);
    keys_[hash] = std::move(shared);
}

GATEHOUSE_DECL bool api_key_validator::revoke(std::string_view key) {
    const auto hash = hash_api_key(key);
    return hash && revoke_hash(*hash);
}

GATEHOUSE_DECL bool api_key_validator::revoke_hash(const api_key_hash& hash) {
    std::unique_lock lock(mutex_);
    return keys_.erase(hash) != 0;
}

GATEHOUSE_DECL std::size_t api_key_validator::size() const {
    std::shared_lock lock(mutex_);
    return keys_.size();
}

GATEHOUSE_DECL std::error_code api_key_validator::validate(std::string_view key, identity& out) const noexcept {
    try {
        if (key.empty()) return auth_errc::empty_credential;
        if (key.size() > options_.max_key_size) return auth_errc::api_key_too_large;
        for (const char c : key) {
            const auto u = static_cast<unsigned char>(c);
            if (u <= 0x20 || u == 0x7f) return auth_errc::malformed_credential;
        }
        const auto hash = hash_api_key(key);
        if (!hash) return auth_errc::crypto_failure;
        std::shared_ptr<const identity> id;
        {
            std::shared_lock lock(mutex_);
            const auto it = keys_.find(*hash);
            if (it == keys_.end()) return auth_errc::unknown_api_key;
            id = it->second;
        }
        if (id->expired(options_.clock())) return auth_errc::api_key_expired;
        out = *id;
        return {};
    } catch (const std::bad_alloc&) {
        return auth_errc::crypto_failure;
    } catch (...) {
        return auth_errc::internal_error;
    }
}

GATEHOUSE_DECL std::error_code api_key_validator::validate(const credential& cred, identity& out) const noexcept {
    if (cred.kind != credential_kind::api_key) return auth_errc::unsupported_credential_kind;
    return validate(cred.value, out);
}

GATEHOUSE_DECL void api_key_validator::async_validate(const credential& cred, completion done) {
    identity id;
    const auto ec = validate(cred, id);
    done(ec, ec ? identity{} : std::move(id));
}

}  // namespace gatehouse::auth
