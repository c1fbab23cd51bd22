// The upgrade gate's first step: where a connection's credential comes from
// (§3.1, §18). A pure function of the request's parts, so that it is tested
// and fuzzed on its own (tests/server/test_credentials.cpp,
// tests/fuzz/fuzz_upgrade_credential.cpp); gateway_core::on_upgrade calls it.
#pragma once

#include <gatehouse/auth/authorization_header.hpp>
#include <gatehouse/auth/token_validator.hpp>
#include <gatehouse/protocol/guid.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::server::detail {

/// Longest token taken from the query string or a subprotocol (the
/// Authorization header has its own limit, authorization_header_options).
inline constexpr std::size_t max_browser_token_size = 16 * 1024;

/// Which forms the gateway accepts (gateway_options of the same names).
struct credential_sources {
    bool accept_api_keys = false;
    bool accept_query_token = false;
    bool accept_subprotocol_token = false;
    std::string_view subprotocol_marker;
};

enum class credential_outcome {
    found,
    missing,    ///< no form the options accept carried one
    malformed,  ///< an Authorization header that does not parse (no fallback to the other forms)
};

/// `in` with %XX and '+' decoded (application/x-www-form-urlencoded);
/// `ok` false, and nothing returned, on a truncated or non-hex escape.
inline std::string url_decode(std::string_view in, bool& ok) {
    std::string out;
    out.reserve(in.size());
    ok = true;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%') {
            if (i + 2 >= in.size()) {
                ok = false;
                return {};
            }
            const int hi = protocol::detail::hex_value(in[i + 1]);
            const int lo = protocol::detail::hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) {
                ok = false;
                return {};
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// The value of query parameter `name` (first occurrence), url-decoded;
/// false when absent, without a value, or badly escaped.
inline bool query_parameter(std::string_view query, std::string_view name, std::string& value) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) != name) continue;
        if (eq == std::string_view::npos) return false;
        bool ok = false;
        value = url_decode(pair.substr(eq + 1), ok);
        return ok;
    }
    return false;
}

/// The connection's credential: the Authorization header when present (a
/// malformed one refuses the upgrade), else, when accepted, `?token=` in the
/// query (`query`: the part of the resource after '?'), else, when accepted,
/// the subprotocol pair [marker, token] among `offered`, in which case
/// `subprotocol` is set to the marker (the gateway selects it). `out` and
/// `subprotocol` are written only when the result is found.
inline credential_outcome extract_credential(std::string_view authorization, std::string_view query,
                                             const std::vector<std::string>& offered, const credential_sources& from,
                                             auth::credential& out, std::string& subprotocol) {
    if (!authorization.empty()) {
        auth::authorization_header_options parse_options;
        parse_options.accept_api_key = from.accept_api_keys;
        auth::credential parsed;
        if (auth::parse_authorization_header(authorization, parsed, parse_options)) return credential_outcome::malformed;
        out = std::move(parsed);
        return credential_outcome::found;
    }
    if (from.accept_query_token && !query.empty()) {
        std::string token;
        if (query_parameter(query, "token", token) && !token.empty() && token.size() <= max_browser_token_size) {
            out = {auth::credential_kind::bearer, std::move(token)};
            return credential_outcome::found;
        }
    }
    if (from.accept_subprotocol_token) {
        for (std::size_t i = 0; i + 1 < offered.size(); ++i) {
            if (offered[i] == from.subprotocol_marker && !offered[i + 1].empty() &&
                offered[i + 1].size() <= max_browser_token_size) {
                out = {auth::credential_kind::bearer, offered[i + 1]};
                subprotocol = std::string(from.subprotocol_marker);
                return credential_outcome::found;
            }
        }
    }
    return credential_outcome::missing;
}

}  // namespace gatehouse::server::detail
