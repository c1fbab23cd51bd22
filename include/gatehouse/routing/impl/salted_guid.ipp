// Implementation of gatehouse/routing/salted_guid.hpp.
#pragma once

#include <gatehouse/routing/salted_guid.hpp>

#include <openssl/evp.h>

#include <cstring>

namespace gatehouse::routing {

GATEHOUSE_DECL protocol::guid derive_guid(std::string_view input, guid_kind kind) noexcept {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    // EVP_Digest with the built-in SHA-256 cannot fail for in-memory input
    // short of memory exhaustion; on failure the digest stays zeroed rather
    // than uninitialized.
    std::memset(digest, 0, sizeof digest);
    EVP_Digest(input.data(), input.size(), digest, &digest_size, EVP_sha256(), nullptr);

    std::uint8_t b[16];
    std::memcpy(b, digest, 16);
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | (static_cast<std::uint8_t>(kind) << 4));
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);

    // .NET `new Guid(byte[])` reads bytes 0-3, 4-5 and 6-7 as little-endian
    // integers; the protocol then writes the text order.
    protocol::guid g;
    const std::uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (std::size_t i = 0; i < 16; ++i) g.bytes[i] = b[order[i]];
    return g;
}

GATEHOUSE_DECL std::string service_guid_input(std::string_view session_id, std::string_view endpoint_key,
                                              std::string_view salt, guid_input_order order) {
    const std::string_view first = order == guid_input_order::bannou_compatible ? session_id : endpoint_key;
    const std::string_view second = order == guid_input_order::bannou_compatible ? endpoint_key : session_id;
    std::string input;
    input.reserve(8 + first.size() + 9 + second.size() + 6 + salt.size());
    input.append("service:").append(first).append("|session:").append(second).append("|salt:").append(salt);
    return input;
}

GATEHOUSE_DECL protocol::guid service_guid(std::string_view session_id, std::string_view endpoint_key,
                                           std::string_view salt, guid_input_order order) {
    return derive_guid(service_guid_input(session_id, endpoint_key, salt, order), guid_kind::service);
}

GATEHOUSE_DECL protocol::guid client_pair_guid(std::string_view a, std::string_view b, std::string_view salt) {
    if (b < a) std::swap(a, b);
    std::string input;
    input.reserve(7 + a.size() + 1 + b.size() + 6 + salt.size());
    input.append("client:").append(a).append(":").append(b).append("|salt:").append(salt);
    return derive_guid(input, guid_kind::client_pair);
}

GATEHOUSE_DECL protocol::guid shortcut_guid(std::string_view session_id, std::string_view name,
                                            std::string_view source, std::string_view salt) {
    std::string input;
    input.reserve(9 + name.size() + 9 + session_id.size() + 8 + source.size() + 6 + salt.size());
    input.append("shortcut:").append(name).append("|session:").append(session_id);
    input.append("|source:").append(source).append("|salt:").append(salt);
    return derive_guid(input, guid_kind::shortcut);
}

}  // namespace gatehouse::routing
