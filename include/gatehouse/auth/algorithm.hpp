// JWS algorithms (RFC 7518, RFC 8037), sets of them, and the key type each
// one needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace gatehouse::auth {

/// The JWS algorithms gatehouse verifies ("none" is not one of them).
enum class jwt_algorithm : std::uint8_t {
    hs256, hs384, hs512,
    rs256, rs384, rs512,
    ps256, ps384, ps512,
    es256, es384, es512,
    eddsa,  ///< Ed25519 only (RFC 8037); Ed448 keys are refused
};

inline constexpr std::size_t jwt_algorithm_count = 13;

/// The "alg" spelling ("HS256", ..., "EdDSA").
inline std::string_view to_string(jwt_algorithm a) noexcept {
    constexpr std::string_view names[jwt_algorithm_count] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                                             "RS512", "PS256", "PS384", "PS512", "ES256",
                                                             "ES384", "ES512", "EdDSA"};
    return names[static_cast<std::size_t>(a)];
}

/// The algorithm named exactly `name` (case-sensitive, as RFC 7515 requires).
inline std::optional<jwt_algorithm> parse_jwt_algorithm(std::string_view name) noexcept {
    for (std::size_t i = 0; i < jwt_algorithm_count; ++i) {
        const auto a = static_cast<jwt_algorithm>(i);
        if (to_string(a) == name) return a;
    }
    return std::nullopt;
}

/// A small set of algorithms: which ones a key may verify.
class algorithm_set {
public:
    constexpr algorithm_set() noexcept = default;
    constexpr algorithm_set(std::initializer_list<jwt_algorithm> algs) noexcept {
        for (const auto a : algs) bits_ |= bit(a);
    }
    static constexpr algorithm_set all() noexcept { return from_bits((1u << jwt_algorithm_count) - 1); }
    static constexpr algorithm_set from_bits(std::uint32_t bits) noexcept {
        algorithm_set s;
        s.bits_ = bits & ((1u << jwt_algorithm_count) - 1);
        return s;
    }

    constexpr bool contains(jwt_algorithm a) const noexcept { return (bits_ & bit(a)) != 0; }
    constexpr bool empty() const noexcept { return bits_ == 0; }
    constexpr std::uint32_t bits() const noexcept { return bits_; }
    constexpr algorithm_set& insert(jwt_algorithm a) noexcept {
        bits_ |= bit(a);
        return *this;
    }
    friend constexpr algorithm_set operator&(algorithm_set a, algorithm_set b) noexcept {
        return from_bits(a.bits_ & b.bits_);
    }
    friend constexpr algorithm_set operator|(algorithm_set a, algorithm_set b) noexcept {
        return from_bits(a.bits_ | b.bits_);
    }
    friend constexpr bool operator==(algorithm_set a, algorithm_set b) noexcept { return a.bits_ == b.bits_; }
    friend constexpr bool operator!=(algorithm_set a, algorithm_set b) noexcept { return a.bits_ != b.bits_; }

private:
    static constexpr std::uint32_t bit(jwt_algorithm a) noexcept { return 1u << static_cast<unsigned>(a); }
    std::uint32_t bits_ = 0;
};

/// What kind of key material a key holds. Each algorithm needs exactly one.
enum class key_type : std::uint8_t {
    oct,      ///< an HMAC secret
    rsa,      ///< RSA, 2048 bits or more
    ec_p256,  ///< ECDSA on P-256
    ec_p384,  ///< ECDSA on P-384
    ec_p521,  ///< ECDSA on P-521
    ed25519,  ///< EdDSA on Ed25519
};

/// The key type an algorithm verifies with.
inline key_type required_key_type(jwt_algorithm a) noexcept {
    switch (a) {
    case jwt_algorithm::hs256:
    case jwt_algorithm::hs384:
    case jwt_algorithm::hs512: return key_type::oct;
    case jwt_algorithm::es256: return key_type::ec_p256;
    case jwt_algorithm::es384: return key_type::ec_p384;
    case jwt_algorithm::es512: return key_type::ec_p521;
    case jwt_algorithm::eddsa: return key_type::ed25519;
    default: return key_type::rsa;
    }
}

/// Every algorithm a key type can verify.
inline algorithm_set algorithms_for(key_type t) noexcept {
    using A = jwt_algorithm;
    switch (t) {
    case key_type::oct: return {A::hs256, A::hs384, A::hs512};
    case key_type::rsa: return {A::rs256, A::rs384, A::rs512, A::ps256, A::ps384, A::ps512};
    case key_type::ec_p256: return {A::es256};
    case key_type::ec_p384: return {A::es384};
    case key_type::ec_p521: return {A::es512};
    case key_type::ed25519: return {A::eddsa};
    }
    return {};
}

}  // namespace gatehouse::auth
