// The two frame headers (PROTOCOL.md §4): 31-byte request header (requests,
// events, server-to-client requests) and 16-byte response header (replies).
// Bit 0x40 of the flags byte alone decides which one a frame has (§4.3).
#pragma once

#include <gatehouse/protocol/bytes.hpp>
#include <gatehouse/protocol/endian.hpp>
#include <gatehouse/protocol/error.hpp>
#include <gatehouse/protocol/flags.hpp>
#include <gatehouse/protocol/guid.hpp>
#include <gatehouse/protocol/response_code.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace gatehouse::protocol {

inline constexpr std::size_t request_header_size = 31;
inline constexpr std::size_t response_header_size = 16;

/// Offset 0 flags, 1 channel (u16), 3 sequence (u32), 7 service GUID (16
/// bytes), 23 message id (u64); payload from 31.
struct request_header {
    message_flags flags = message_flags::none;
    std::uint16_t channel = 0;
    std::uint32_t sequence = 0;
    guid service{};
    std::uint64_t message_id = 0;

    friend bool operator==(const request_header& a, const request_header& b) noexcept {
        return a.flags == b.flags && a.channel == b.channel && a.sequence == b.sequence &&
               a.service == b.service && a.message_id == b.message_id;
    }
    friend bool operator!=(const request_header& a, const request_header& b) noexcept { return !(a == b); }
};

/// Offset 0 flags (always with 0x40), 1 channel, 3 sequence, 7 message id,
/// 15 response code; payload from 16 (empty on any non-zero code).
struct response_header {
    message_flags flags = message_flags::response;
    std::uint16_t channel = 0;
    std::uint32_t sequence = 0;
    std::uint64_t message_id = 0;
    response_code code = response_code::ok;

    friend bool operator==(const response_header& a, const response_header& b) noexcept {
        return a.flags == b.flags && a.channel == b.channel && a.sequence == b.sequence &&
               a.message_id == b.message_id && a.code == b.code;
    }
    friend bool operator!=(const response_header& a, const response_header& b) noexcept { return !(a == b); }
};

/// Whether a frame whose first byte is `flags` has the 16-byte response header.
constexpr bool is_response(message_flags flags) noexcept {
    return (flags & message_flags::response) == message_flags::response;
}

/// Writes the 31 header bytes to `out`, which must hold at least 31 bytes.
/// The flags are written as given (a request header never carries 0x40; the
/// caller decides, the codec does not silently change bits).
constexpr void encode_header(const request_header& h, std::uint8_t* out) noexcept {
    // Load every field before the first store: `out` may alias `h` as far as
    // the compiler knows (uint8_t aliases everything), which would force a
    // reload after each byte store. Scalars, not a struct copy: a copied
    // struct read back in wider pieces stalls store forwarding (measured).
    const auto flags = h.flags;
    const auto channel = h.channel;
    const auto sequence = h.sequence;
    const auto service = h.service.bytes;
    const auto message_id = h.message_id;
    out[0] = to_byte(flags);
    store_be16(out + 1, channel);
    store_be32(out + 3, sequence);
    detail::copy_bytes(out + 7, service.data(), 16);
    store_be64(out + 23, message_id);
}

/// Writes the 16 header bytes to `out`, which must hold at least 16 bytes.
/// The Response bit is always set: without it the frame would be read as a request.
constexpr void encode_header(const response_header& h, std::uint8_t* out) noexcept {
    const auto flags = h.flags | message_flags::response;  // see the request form
    const auto channel = h.channel;
    const auto sequence = h.sequence;
    const auto message_id = h.message_id;
    const auto code = h.code;
    out[0] = to_byte(flags);
    store_be16(out + 1, channel);
    store_be32(out + 3, sequence);
    store_be64(out + 7, message_id);
    out[15] = to_byte(code);
}

/// Bounds-checked forms: return the number of bytes written, or 0 and
/// `protocol_errc::buffer_too_small`.
inline std::size_t encode_header(const request_header& h, mutable_bytes out, std::error_code& ec) noexcept {
    if (out.size() < request_header_size) {
        ec = protocol_errc::buffer_too_small;
        return 0;
    }
    ec.clear();
    encode_header(h, out.data());
    return request_header_size;
}

inline std::size_t encode_header(const response_header& h, mutable_bytes out, std::error_code& ec) noexcept {
    if (out.size() < response_header_size) {
        ec = protocol_errc::buffer_too_small;
        return 0;
    }
    ec.clear();
    encode_header(h, out.data());
    return response_header_size;
}

/// Appends header and payload to a byte container (std::vector<std::uint8_t>,
/// std::string, ...). Convenience for tests, tools and cold paths: it may
/// allocate. The gateway's hot path encodes into its own buffers instead.
template <class Container>
void append_frame(Container& out, const request_header& h, bytes_view payload = {}) {
    const std::size_t at = out.size();
    out.resize(at + request_header_size + payload.size());
    auto* p = reinterpret_cast<std::uint8_t*>(&out[0]) + at;
    encode_header(h, p);
    if (!payload.empty()) std::memcpy(p + request_header_size, payload.data(), payload.size());
}

template <class Container>
void append_frame(Container& out, const response_header& h, bytes_view payload = {}) {
    const std::size_t at = out.size();
    out.resize(at + response_header_size + payload.size());
    auto* p = reinterpret_cast<std::uint8_t*>(&out[0]) + at;
    encode_header(h, p);
    if (!payload.empty()) std::memcpy(p + response_header_size, payload.data(), payload.size());
}

/// A decoded frame: the header fields and a view of the payload, pointing into
/// the bytes given to `decode_frame` (which must outlive the view). Nothing is
/// copied but the header fields, nothing is allocated.
struct frame_view {
    message_flags flags = message_flags::none;
    std::uint16_t channel = 0;
    std::uint32_t sequence = 0;
    std::uint64_t message_id = 0;
    guid service{};                           ///< requests only; nil for responses
    response_code code = response_code::ok;   ///< responses only; ok for requests
    bytes_view payload;

    bool is_response() const noexcept { return protocol::is_response(flags); }
    bool has(message_flags bits) const noexcept { return has_flags(flags, bits); }

    request_header request() const noexcept { return {flags, channel, sequence, service, message_id}; }
    response_header response() const noexcept { return {flags, channel, sequence, message_id, code}; }
};

/// Decodes either kind of frame; bit 0x40 of the first byte decides. Never
/// reads past `in`, never throws, never allocates. On error `out` is untouched.
inline std::error_code decode_frame(bytes_view in, frame_view& out) noexcept {
    if (in.empty()) return protocol_errc::empty_frame;
    const std::uint8_t* p = in.data();
    const auto flags = static_cast<message_flags>(p[0]);
    // Every load happens before the first store through `out`: a store could
    // alias the input bytes as far as the compiler knows, and a local struct
    // copied as a whole costs a store-forwarding stall. Both measured.
    if (is_response(flags)) {
        if (in.size() < response_header_size) return protocol_errc::truncated_response_header;
        const auto channel = load_be16(p + 1);
        const auto sequence = load_be32(p + 3);
        const auto message_id = load_be64(p + 7);
        const auto code = static_cast<response_code>(p[15]);
        out.flags = flags;
        out.channel = channel;
        out.sequence = sequence;
        out.message_id = message_id;
        out.service = guid{};
        out.code = code;
        out.payload = bytes_view(p + response_header_size, in.size() - response_header_size);
        return detail::success();
    }
    if (in.size() < request_header_size) return protocol_errc::truncated_request_header;
    const auto channel = load_be16(p + 1);
    const auto sequence = load_be32(p + 3);
    const auto service = guid::from_wire(p + 7);
    const auto message_id = load_be64(p + 23);
    out.flags = flags;
    out.channel = channel;
    out.sequence = sequence;
    out.service = service;
    out.message_id = message_id;
    out.code = response_code::ok;
    out.payload = bytes_view(p + request_header_size, in.size() - request_header_size);
    return detail::success();
}

/// Decodes a frame that must be a request (31-byte header).
inline std::error_code decode_request(bytes_view in, request_header& header, bytes_view& payload) noexcept {
    if (in.empty()) return protocol_errc::empty_frame;
    if (is_response(static_cast<message_flags>(in[0]))) return protocol_errc::not_a_request;
    frame_view f;
    if (auto ec = decode_frame(in, f)) return ec;
    header = f.request();
    payload = f.payload;
    return {};
}

/// Decodes a frame that must be a response (16-byte header).
inline std::error_code decode_response(bytes_view in, response_header& header, bytes_view& payload) noexcept {
    if (in.empty()) return protocol_errc::empty_frame;
    if (!is_response(static_cast<message_flags>(in[0]))) return protocol_errc::not_a_response;
    frame_view f;
    if (auto ec = decode_frame(in, f)) return ec;
    header = f.response();
    payload = f.payload;
    return {};
}

}  // namespace gatehouse::protocol
