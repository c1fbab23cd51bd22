// The few pieces of RFC 6455 the load generator needs, kept lean so that the
// load generator is never the bottleneck: the client's upgrade request, the
// check of the 101 answer, masked client frames and a parser for the
// server's (unmasked) frames. A parser of peer input: fuzzed
// (tests/fuzz/fuzz_loadgen_ws.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace gatehouse::loadgen {

enum class ws_opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

/// The upgrade request. The key need not be random for a load test; the
/// server only echoes its hash.
inline std::string upgrade_request(std::string_view host, std::string_view path, std::string_view authorization) {
    std::string r;
    r.reserve(256 + authorization.size());
    r.append("GET ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
    r.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    r.append("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    if (!authorization.empty()) r.append("Authorization: ").append(authorization).append("\r\n");
    r.append("\r\n");
    return r;
}

/// The HTTP status of an upgrade answer whose head ends at "\r\n\r\n"; 0 when
/// the status line is malformed.
inline int upgrade_status(std::string_view head) {
    if (head.size() < 12 || head.substr(0, 9) != "HTTP/1.1 ") return 0;
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (head[i] < '0' || head[i] > '9') return 0;
        status = status * 10 + (head[i] - '0');
    }
    return status;
}

/// Appends one masked client frame (FIN set) whose payload is the
/// concatenation of `head` and `body` (a protocol header and its payload,
/// without building the message first).
inline void append_client_frame(std::string& out, ws_opcode op, std::string_view head, std::string_view body,
                                std::uint32_t mask) {
    const std::size_t n = head.size() + body.size();
    char h[14];
    std::size_t hn = 0;
    h[hn++] = static_cast<char>(0x80 | static_cast<std::uint8_t>(op));
    if (n < 126) {
        h[hn++] = static_cast<char>(0x80 | n);
    } else if (n <= 0xffff) {
        h[hn++] = static_cast<char>(0x80 | 126);
        h[hn++] = static_cast<char>(n >> 8);
        h[hn++] = static_cast<char>(n);
    } else {
        h[hn++] = static_cast<char>(0x80 | 127);
        for (int shift = 56; shift >= 0; shift -= 8) h[hn++] = static_cast<char>(static_cast<std::uint64_t>(n) >> shift);
    }
    std::memcpy(h + hn, &mask, 4);
    hn += 4;
    out.append(h, hn);
    const std::size_t at = out.size();
    out.append(head).append(body);
    // Mask 8 bytes at a time: the mask repeats every 4 bytes.
    const std::uint64_t m8 = (std::uint64_t{mask} << 32) | mask;
    char* p = &out[at];
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        w ^= m8;
        std::memcpy(p + i, &w, 8);
    }
    std::uint8_t m[4];
    std::memcpy(m, &mask, 4);
    for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ static_cast<char>(m[i & 3]));
}

inline void append_client_frame(std::string& out, ws_opcode op, std::string_view payload, std::uint32_t mask) {
    append_client_frame(out, op, payload, std::string_view(), mask);
}

/// One frame from the server, viewed in the input buffer.
struct ws_frame {
    bool fin = false;
    ws_opcode opcode = ws_opcode::continuation;
    std::string_view payload;
    std::size_t size = 0;  ///< bytes of the whole frame
};

enum class parse_result { complete, need_more, protocol_error, too_large };

/// Parses one frame at the start of `in`. Servers never mask (RFC 6455 §5.1):
/// a masked frame is a protocol error, as are reserved bits and opcodes,
/// fragmented or oversized control frames.
inline parse_result parse_server_frame(std::string_view in, std::size_t max_payload, ws_frame& out) {
    if (in.size() < 2) return parse_result::need_more;
    const auto b0 = static_cast<std::uint8_t>(in[0]);
    const auto b1 = static_cast<std::uint8_t>(in[1]);
    if ((b0 & 0x70) != 0 || (b1 & 0x80) != 0) return parse_result::protocol_error;
    const std::uint8_t op = b0 & 0x0f;
    const bool control = (op & 0x08) != 0;
    if (!(op <= 2 || (op >= 8 && op <= 10))) return parse_result::protocol_error;
    std::uint64_t n = b1 & 0x7f;
    std::size_t header = 2;
    if (n == 126) {
        if (in.size() < 4) return parse_result::need_more;
        n = (std::uint64_t{static_cast<std::uint8_t>(in[2])} << 8) | static_cast<std::uint8_t>(in[3]);
        header = 4;
    } else if (n == 127) {
        if (in.size() < 10) return parse_result::need_more;
        n = 0;
        for (std::size_t i = 2; i < 10; ++i) n = (n << 8) | static_cast<std::uint8_t>(in[i]);
        header = 10;
    }
    if (control && (n > 125 || (b0 & 0x80) == 0)) return parse_result::protocol_error;
    if (n > max_payload) return parse_result::too_large;
    if (in.size() - header < n) return parse_result::need_more;
    out.fin = (b0 & 0x80) != 0;
    out.opcode = static_cast<ws_opcode>(op);
    out.payload = in.substr(header, static_cast<std::size_t>(n));
    out.size = header + static_cast<std::size_t>(n);
    return parse_result::complete;
}

}  // namespace gatehouse::loadgen
