// libFuzzer target: the upgrade gate's credential extraction
// (server/detail/credentials.hpp), fed an Authorization header, a query
// string and offered subprotocols split from the input at '\n'. The first
// byte chooses which forms are accepted. Invariants: no crash; found means a
// non-empty value, within max_browser_token_size when it came from a browser
// form, and the subprotocol set only for the subprotocol form; otherwise the
// outputs are untouched.
#include <gatehouse/server/detail/credentials.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace d = gatehouse::server::detail;
namespace a = gatehouse::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    d::credential_sources from;
    from.accept_api_keys = (data[0] & 1) != 0;
    from.accept_query_token = (data[0] & 2) != 0;
    from.accept_subprotocol_token = (data[0] & 4) != 0;
    from.subprotocol_marker = "bearer";
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    std::vector<std::string_view> parts;
    while (!rest.empty() && parts.size() < 16) {
        const auto nl = rest.find('\n');
        parts.push_back(rest.substr(0, nl));
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    }
    const std::string_view authorization = parts.size() > 0 ? parts[0] : std::string_view{};
    const std::string_view query = parts.size() > 1 ? parts[1] : std::string_view{};
    std::vector<std::string> offered;
    for (std::size_t i = 2; i < parts.size(); ++i) offered.emplace_back(parts[i]);

    a::credential c{a::credential_kind::reconnect, "sentinel"};
    std::string subprotocol = "unset";
    const auto outcome = d::extract_credential(authorization, query, offered, from, c, subprotocol);
    if (outcome != d::credential_outcome::found) {
        if (c.value != "sentinel" || subprotocol != "unset") std::abort();
        if (outcome == d::credential_outcome::malformed && authorization.empty()) std::abort();
        return 0;
    }
    if (c.value.empty()) std::abort();
    if (authorization.empty()) {
        if (c.kind != a::credential_kind::bearer || c.value.size() > d::max_browser_token_size) std::abort();
        if (subprotocol != "unset" && subprotocol != "bearer") std::abort();
        if (subprotocol == "bearer" && !from.accept_subprotocol_token) std::abort();
        if (subprotocol == "unset" && !from.accept_query_token) std::abort();
    } else if (subprotocol != "unset") {
        std::abort();
    }
    return 0;
}
