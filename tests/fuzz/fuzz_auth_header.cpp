// libFuzzer target: parse_authorization_header, the first parser a peer's
// bytes reach at the upgrade. Invariants: no crash; on success a credential
// of a known kind whose value is non-empty, has no whitespace or control
// characters and occurs inside the input; on failure the output is
// untouched and the error belongs to the auth category.
#include <gatehouse/auth/authorization_header.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace a = gatehouse::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view header(reinterpret_cast<const char*>(data), size);
    a::authorization_header_options options;
    options.accept_api_key = size % 2 == 0;
    options.max_size = 4096;
    a::credential c{a::credential_kind::reconnect, "sentinel"};
    const auto ec = a::parse_authorization_header(header, c, options);
    if (ec) {
        if (ec.category() != a::auth_category()) std::abort();
        if (c.value != "sentinel" || c.kind != a::credential_kind::reconnect) std::abort();
        return 0;
    }
    if (c.value.empty() || header.find(c.value) == std::string_view::npos) std::abort();
    for (const char ch : c.value)
        if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) std::abort();
    if (c.kind == a::credential_kind::api_key && !options.accept_api_key) std::abort();
    return 0;
}
