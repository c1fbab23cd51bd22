// API keys: long random secrets presented as "Authorization: ApiKey <key>",
// stored only as SHA-256 hashes, each mapped to an identity.
#pragma once

#include <gatehouse/auth/clock.hpp>
#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/identity.hpp>
#include <gatehouse/auth/token_validator.hpp>
#include <gatehouse/detail/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace gatehouse::auth {

/// SHA-256 of an API key: the only form in which keys are stored.
using api_key_hash = std::array<std::uint8_t, 32>;

/// SHA-256 of `key`; empty optional only if OpenSSL fails (out of memory).
GATEHOUSE_DECL std::optional<api_key_hash> hash_api_key(std::string_view key) noexcept;

/// A hash from its 64-character hex text (either case), as kept in a
/// configuration file; empty optional on any other input.
GATEHOUSE_DECL std::optional<api_key_hash> parse_api_key_hash(std::string_view hex) noexcept;

/// Lowercase hex text of a hash.
GATEHOUSE_DECL std::string to_hex(const api_key_hash& hash);

struct api_key_options {
    /// Longest key accepted, in bytes (256). Longer keys are refused
    /// before hashing.
    std::size_t max_key_size = 256;
    /// Where "now" comes from, for identities with expires_at (the system clock).
    time_source clock = system_time();
};

/// Validates API keys. The presented key is hashed and compared against the
/// stored hashes with CRYPTO_memcmp, so neither the hash table lookup nor the
/// comparison reveals anything about the stored keys beyond what SHA-256
/// already hides. Keys can be added and revoked at run time.
///
/// Thread-safety: every member may be called concurrently (validation takes
/// a shared lock, add/revoke an exclusive one). async_validate completes
/// inline. Never throws on bad input.
class api_key_validator final : public token_validator {
public:
    /// Throws std::invalid_argument for a zero max_key_size or no clock.
    GATEHOUSE_DECL explicit api_key_validator(api_key_options options = {});

    /// Registers `key` (stored hashed) for `id`; replaces an identity the
    /// same key had. With id.expires_at set, the key is accepted until
    /// id.valid_until() (expires_at + id.expiry_leeway, no leeway by
    /// default), and the identity handed out carries both, so the gateway
    /// applies the same deadline. Errors: empty_credential,
    /// api_key_too_large, malformed_credential, crypto_failure.
    GATEHOUSE_DECL std::error_code add(std::string_view key, identity id);
    /// Registers an already hashed key.
    GATEHOUSE_DECL void add_hash(const api_key_hash& hash, identity id);
    /// Forgets a key; later validations fail with unknown_api_key. Returns
    /// whether it was registered.
    GATEHOUSE_DECL bool revoke(std::string_view key);
    GATEHOUSE_DECL bool revoke_hash(const api_key_hash& hash);
    GATEHOUSE_DECL std::size_t size() const;

    /// Errors: empty_credential, api_key_too_large, malformed_credential
    /// (whitespace or control characters), unknown_api_key, api_key_expired.
    GATEHOUSE_DECL std::error_code validate(std::string_view key, identity& out) const noexcept;
    /// As above; unsupported_credential_kind unless the kind is api_key.
    GATEHOUSE_DECL std::error_code validate(const credential& cred, identity& out) const noexcept;
    GATEHOUSE_DECL void async_validate(const credential& cred, completion done) override;

private:
    struct hash_hasher {
        std::size_t operator()(const api_key_hash& h) const noexcept {
            std::size_t v = 0;
            for (std::size_t i = 0; i < sizeof v; ++i) v = v << 8 | h[i];
            return v;
        }
    };
    struct constant_time_equal {
        GATEHOUSE_DECL bool operator()(const api_key_hash& a, const api_key_hash& b) const noexcept;
    };

    api_key_options options_;
    mutable std::shared_mutex mutex_;
    std::unordered_map<api_key_hash, std::shared_ptr<const identity>, hash_hasher, constant_time_equal> keys_;
};

}  // namespace gatehouse::auth

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/auth/impl/api_key_validator.ipp>
#endif
