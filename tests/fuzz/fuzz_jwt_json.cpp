// libFuzzer target: the claims scanner behind JWT validation, differential
// against nlohmann::json. Whatever the scanner accepts, nlohmann must accept
// with the same top-level members (so identity::claims always parses);
// whatever nlohmann accepts within the depth limit (no BOM), the scanner
// must accept (except that nlohmann skips a BOM and stops at a NUL byte);
// string values must unescape to nlohmann's strings. Repeated member names,
// which nlohmann resolves by keeping the last, the scanner refuses
// (duplicate_member) exactly when nlohmann's own key events repeat a name
// within one object.
#include <gatehouse/auth/detail/json_scan.hpp>
#include <gatehouse/auth/keys.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace j = gatehouse::auth::detail::json;

namespace {

// Whether nlohmann, reading `text` in order, sees an object repeat a name
// (set even if the text turns out not to be JSON further on).
bool nlohmann_repeats_a_name(std::string_view text) {
    std::vector<std::set<std::string>> open;
    bool repeated = false;
    (void)nlohmann::json::parse(
        text.begin(), text.end(),
        [&](int, nlohmann::json::parse_event_t e, nlohmann::json& parsed) {
            if (repeated) return false;
            if (e == nlohmann::json::parse_event_t::object_start) open.emplace_back();
            else if (e == nlohmann::json::parse_event_t::object_end && !open.empty()) open.pop_back();
            else if (e == nlohmann::json::parse_event_t::key && !open.empty())
                repeated = !open.back().insert(parsed.get<std::string>()).second;
            return true;
        },
        false);
    return repeated;
}

}  // namespace

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
    const bool repeated = nlohmann_repeats_a_name(text);

    if (r == j::scan_result::duplicate_member) {
        if (!repeated) std::abort();  // refused a name nlohmann did not see twice
        return 0;
    }
    if (r == j::scan_result::ok) {
        if (repeated) std::abort();
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
    } else if (!dom.is_discarded() && !bom && !nul && within_depth && !repeated) {
        std::abort();  // nlohmann accepts what the scanner refused
    }
    return 0;
}
