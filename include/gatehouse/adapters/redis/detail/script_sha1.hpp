// The name Redis gives a Lua script in its script cache (EVALSHA, SCRIPT
// LOAD): the SHA-1 of its text in lowercase hex. Shared by the session store
// and the event bus.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace gatehouse::adapters::redis::detail {

inline std::string script_sha1(std::string_view body) {
    unsigned char digest[EVP_MAX_MD_SIZE] = {};
    unsigned int digest_size = 0;
    EVP_Digest(body.data(), body.size(), digest, &digest_size, EVP_sha1(), nullptr);
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex(40, '0');
    for (std::size_t i = 0; i < 20; ++i) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
    return hex;
}

}  // namespace gatehouse::adapters::redis::detail
