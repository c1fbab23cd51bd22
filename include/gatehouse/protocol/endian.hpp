// Big-endian (network order) integer helpers. Every multi-byte integer of the
// protocol is unsigned big-endian (PROTOCOL.md §3.2).
//
// The helpers are constexpr. At run time they compile to one load or store
// plus a byte swap: the portable shift-and-or form is kept for constant
// evaluation only, because g++ does not reliably merge it in every context
// (measured: 3-5x slower header encoding inside a benchmark loop).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GATEHOUSE_DETAIL_FAST_BE 1
#endif

namespace gatehouse::protocol {

namespace detail {
constexpr bool at_run_time() noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    return !__builtin_is_constant_evaluated();
#else
    return false;
#endif
}

/// memcpy at run time, a byte loop in constant evaluation.
constexpr void copy_bytes(std::uint8_t* dst, const std::uint8_t* src, std::size_t n) noexcept {
    if (at_run_time()) {
        std::memcpy(dst, src, n);
        return;
    }
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
}
}  // namespace detail

constexpr std::uint16_t load_be16(const std::uint8_t* p) noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    if (detail::at_run_time()) {
        std::uint16_t v = 0;
        std::memcpy(&v, p, 2);
        return __builtin_bswap16(v);
    }
#endif
    return static_cast<std::uint16_t>((std::uint16_t{p[0]} << 8) | std::uint16_t{p[1]});
}

constexpr std::uint32_t load_be32(const std::uint8_t* p) noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    if (detail::at_run_time()) {
        std::uint32_t v = 0;
        std::memcpy(&v, p, 4);
        return __builtin_bswap32(v);
    }
#endif
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

constexpr std::uint64_t load_be64(const std::uint8_t* p) noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    if (detail::at_run_time()) {
        std::uint64_t v = 0;
        std::memcpy(&v, p, 8);
        return __builtin_bswap64(v);
    }
#endif
    return (std::uint64_t{load_be32(p)} << 32) | std::uint64_t{load_be32(p + 4)};
}

constexpr void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    if (detail::at_run_time()) {
        const std::uint16_t be = __builtin_bswap16(v);
        std::memcpy(p, &be, 2);
        return;
    }
#endif
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

constexpr void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    if (detail::at_run_time()) {
        const std::uint32_t be = __builtin_bswap32(v);
        std::memcpy(p, &be, 4);
        return;
    }
#endif
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

constexpr void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
#if defined(GATEHOUSE_DETAIL_FAST_BE)
    if (detail::at_run_time()) {
        const std::uint64_t be = __builtin_bswap64(v);
        std::memcpy(p, &be, 8);
        return;
    }
#endif
    store_be32(p, static_cast<std::uint32_t>(v >> 32));
    store_be32(p + 4, static_cast<std::uint32_t>(v));
}

}  // namespace gatehouse::protocol
