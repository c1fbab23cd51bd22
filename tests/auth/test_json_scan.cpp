// The strict JSON scanner that reads claims without a DOM, and the claims
// it hands to identity (escapes, duplicates, Unicode), against nlohmann.
#include "auth_support.hpp"

#include <gatehouse/auth/detail/json_scan.hpp>

#include <doctest/doctest.h>

using namespace gatehouse::test::auth;
namespace j = gatehouse::auth::detail::json;
using A = gatehouse::auth::jwt_algorithm;
using gatehouse::auth::auth_errc;

namespace {
j::scan_result scan(std::string_view text, std::size_t depth = 8) {
    return j::scanner(text, depth).top_object([](std::string_view, bool, const j::value&) {});
}
}  // namespace

TEST_CASE("json scanner: accepts exactly what nlohmann accepts, on a table of edge cases") {
    const char* cases[] = {
        "{}", " {} ", "{\"a\":1}", "{\"a\":-0}", "{\"a\":0.5e-3}", "{\"a\":1E+2}", "{\"a\":[]}", "{\"a\":{}}",
        "{\"a\":[1,\"x\",true,false,null,{\"b\":[]}]}", "{\"\\u00e9\":\"\\ud83d\\ude00\"}", "{\"a\":\"\\/\\b\\f\\n\\r\\t\"}",
        "{\"a\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "{\"a\":12345678901234567890123}",
        // refused by both
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":-}", "{\"a\":+1}", "{\"a\":1e}", "{\"a\":1e400}", "{\"a\":tru}", "{\"a\":nul}", "{'a':1}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xe2\x82\"}", "{\"a\":1} x", "{\"a\":1}{}",
        "{\"a\" 1}", "{a:1}", "{\"a\":[1 2]}", "{\"a\":\"unterminated}",
    };
    for (const char* c : cases) {
        INFO(c);
        const auto dom = nlohmann::json::parse(c, nullptr, false);
        const auto r = scan(c);
        CHECK((r == j::scan_result::ok) == (!dom.is_discarded() && dom.is_object()));
        if (dom.is_discarded()) CHECK(r == j::scan_result::not_json);
    }
    CHECK(scan("[1]") == j::scan_result::not_object);
    CHECK(scan("\"x\"") == j::scan_result::not_object);
    CHECK(scan("{\"a\":[[[]]]}", 3) == j::scan_result::too_deep);
    CHECK(scan("{\"a\":[[]]}", 3) == j::scan_result::ok);
    CHECK(j::unescape("a\\u00e9\\ud83d\\ude00\\n", true) == "a\xc3\xa9\xf0\x9f\x98\x80\n");
}

TEST_CASE("claims: escaped names and values, duplicates (last wins), lazily built DOM") {
    const std::string secret(32, 'e');
    a::jwt_options o;
    o.require_expiration = false;
    a::jwt_validator v(o, make_set({hmac_key(secret, "")}));
    const auto signer = hmac_signer(secret, "");
    // "s\u0075b" is "sub"; the second session_key wins, as in nlohmann.
    const std::string payload =
        R"({"s\u0075b":"caf\u00e9","session_key":"first","session_key":"second","roles":["a\/b","\ud83d\ude00"],)"
        R"("permissions":"x  y","extra":{"n":[1,2]}})";
    const auto token = signed_token(signing_input(R"({"alg":"HS256"})", payload), *signer, A::hs256);
    a::identity id;
    REQUIRE_FALSE(v.validate(token, id));
    CHECK(id.subject == "caf\xc3\xa9");
    CHECK(id.session_key == "second");
    CHECK(id.roles == std::vector<std::string>{"a/b", "\xf0\x9f\x98\x80"});
    CHECK(id.permissions == std::vector<std::string>{"x", "y"});
    REQUIRE(id.claims);
    CHECK(id.claims->text() == payload);
    const auto dom = nlohmann::json::parse(payload);
    CHECK(id.claims->json() == dom);
    CHECK(id.claim("sub")->get<std::string>() == id.subject);
    CHECK(id.claim("session_key")->get<std::string>() == "second");
    CHECK(id.claim("extra")->at("n").size() == 2);
    // An escaped "alg" name and value in the header are read too.
    const auto escaped_header =
        signed_token(signing_input(R"({"\u0061lg":"HS\u0032\u0035\u0036"})", payload), *signer, A::hs256);
    CHECK_FALSE(v.validate(escaped_header, id));
    // claim_set from a host's own JSON value.
    const auto from_value = a::claim_set::from_json(nlohmann::json{{"k", 1}});
    CHECK(from_value->json().at("k") == 1);
    CHECK(from_value->text() == R"({"k":1})");
    const a::claim_set broken(std::string("not json"));
    CHECK(broken.json().is_null());
}
