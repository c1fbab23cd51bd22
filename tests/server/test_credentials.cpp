// The upgrade gate's credential extraction on its own (server/detail/credentials.hpp):
// which form wins, which are refused, the browser forms' limits and escapes.
#include <gatehouse/server/detail/credentials.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {
namespace a = gatehouse::auth;
namespace d = gatehouse::server::detail;

struct extraction {
    d::credential_outcome outcome;
    a::credential credential;
    std::string subprotocol;
};

extraction extract(std::string_view authorization, std::string_view query, std::vector<std::string> offered,
                   bool query_form = true, bool subprotocol_form = true, bool api_keys = false) {
    d::credential_sources from;
    from.accept_api_keys = api_keys;
    from.accept_query_token = query_form;
    from.accept_subprotocol_token = subprotocol_form;
    from.subprotocol_marker = "bearer";
    extraction e;
    e.credential = {a::credential_kind::reconnect, "untouched"};
    e.outcome = d::extract_credential(authorization, query, offered, from, e.credential, e.subprotocol);
    return e;
}
}  // namespace

TEST_CASE("credentials: the Authorization header wins over the browser forms") {
    const auto e = extract("Bearer header-token", "token=query-token", {"bearer", "proto-token"});
    CHECK(e.outcome == d::credential_outcome::found);
    CHECK(e.credential.kind == a::credential_kind::bearer);
    CHECK(e.credential.value == "header-token");
    CHECK(e.subprotocol.empty());
}

TEST_CASE("credentials: a malformed Authorization header refuses, without falling back") {
    for (const char* header : {"Bearer", "Basic dXNlcg==", "Bearer two words", "ApiKey k"}) {
        CAPTURE(header);
        const auto e = extract(header, "token=query-token", {"bearer", "proto-token"});
        CHECK(e.outcome == d::credential_outcome::malformed);
        CHECK(e.credential.value == "untouched");
    }
    // API keys only when accepted.
    const auto key = extract("ApiKey k", "", {}, true, true, true);
    CHECK(key.outcome == d::credential_outcome::found);
    CHECK(key.credential.kind == a::credential_kind::api_key);
}

TEST_CASE("credentials: ?token= is url-decoded, first occurrence, only when accepted") {
    auto e = extract("", "room=1&token=a%2Bb+c&token=second", {});
    CHECK(e.outcome == d::credential_outcome::found);
    CHECK(e.credential.value == "a+b c");
    CHECK(extract("", "token=abc", {}, false, false).outcome == d::credential_outcome::missing);
    // Bad escapes, empty and valueless parameters give nothing.
    for (const char* query : {"token=%4", "token=%zz", "token=", "token", "tokens=abc", "&&"}) {
        CAPTURE(query);
        CHECK(extract("", query, {}, true, false).outcome == d::credential_outcome::missing);
    }
    // At most max_browser_token_size bytes.
    CHECK(extract("", "token=" + std::string(d::max_browser_token_size, 'x'), {}).outcome ==
          d::credential_outcome::found);
    CHECK(extract("", "token=" + std::string(d::max_browser_token_size + 1, 'x'), {}, true, false).outcome ==
          d::credential_outcome::missing);
}

TEST_CASE("credentials: the subprotocol pair [marker, token] selects the marker") {
    auto e = extract("", "", {"chat", "bearer", "proto-token"});
    CHECK(e.outcome == d::credential_outcome::found);
    CHECK(e.credential.value == "proto-token");
    CHECK(e.subprotocol == "bearer");
    // A bad query token falls through to the subprotocol.
    e = extract("", "token=%zz", {"bearer", "proto-token"});
    CHECK(e.credential.value == "proto-token");
    CHECK(extract("", "", {"bearer"}).outcome == d::credential_outcome::missing);  // marker last: no token
    CHECK(extract("", "", {"bearer", ""}).outcome == d::credential_outcome::missing);
    CHECK(extract("", "", {"Bearer", "proto-token"}).outcome == d::credential_outcome::missing);  // exact marker
    CHECK(extract("", "", {"bearer", "proto-token"}, true, false).outcome == d::credential_outcome::missing);
    CHECK(extract("", "", {"bearer", std::string(d::max_browser_token_size + 1, 'x')}).outcome ==
          d::credential_outcome::missing);
}
