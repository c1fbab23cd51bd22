// libFuzzer target: the claims scanner behind JWT validation, differential
// against nlohmann::json. Whatever the scanner accepts, nlohmann must accept
// with the same top-level members (so identity::claims always parses);
// whatever nlohmann accepts within the depth limit (no BOM), the scanner
// must accept (except that nlohmann skips a BOM and stops at a NUL byte);
// string values must unescape to nlohmann's strings.
#include <gatehouse/auth/detail/json_scan.hpp>
#include <gatehouse/auth/keys.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace j = gatehouse::auth::detail::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    constexpr std::size_t depth = 8;
    nlohmann::json members = nlohmann::json::object();
    const auto r = j::scanner(text, depth).top_object([&](std::string_view key, bool escaped, const j::value& v) {
        members[j::unescape(key, escaped)] = v.type == j::kind::string ? nlohmann::json(j::unescape(v.raw, v.escaped))
                                                                       : nlohmann::json(static_cast<int>(v.type));
    });
    const auto dom = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    const bool bom = size >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF;
    // nlohmann stops at a NUL byte as if the input ended there; the scanner
    // refuses it (stricter, never looser).
    const bool nul = text.find('\0') != std::string_view::npos;
    const bool within_depth = gatehouse::auth::detail::json_nesting_depth(text, depth) <= depth;

    if (r == j::scan_result::ok) {
        if (dom.is_discarded() || !dom.is_object()) std::abort();
        if (dom.size() != members.size()) std::abort();
        for (auto it = dom.begin(); it != dom.end(); ++it) {
            const auto m = members.find(it.key());
            if (m == members.end()) std::abort();
            if (it->is_string() && *m != *it) std::abort();
            if (!it->is_string() && m->is_string()) std::abort();
        }
    } else if (r == j::scan_result::not_object) {
        if (dom.is_discarded() || dom.is_object()) std::abort();
    } else if (r == j::scan_result::too_deep) {
        if (within_depth) std::abort();
    } else if (!dom.is_discarded() && !bom && !nul && within_depth) {
        std::abort();  // nlohmann accepts what the scanner refused
    }
    return 0;
}
