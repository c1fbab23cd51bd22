// The strict JSON scanner that reads claims without a DOM, and the claims
// it hands to identity (escapes, duplicates, Unicode), against nlohmann.
#include "auth_support.hpp"

#include <gatehouse/auth/detail/json_scan.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <new>

// Counts this thread's heap allocations while `counting` is set, to show
// that the scanner (duplicate detection included) never allocates.
namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;
}  // namespace
// Not inlined, so that GCC does not pair the malloc and free within them
// with new and delete expressions (-Wmismatched-new-delete at -O2).
[[gnu::noinline]] void* operator new(std::size_t n) {
    if (counting) ++allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

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

TEST_CASE("json scanner: a repeated member name in any object is refused (issue 13)") {
    const auto dup = j::scan_result::duplicate_member;
    CHECK(scan(R"({"a":1,"a":2})") == dup);
    CHECK(scan(R"({"a":1,"b":2,"a":1})") == dup);
    CHECK(scan(R"({"sub":"x","s\u0075b":"y"})") == dup);          // the same name, escaped
    CHECK(scan("{\"\\u00e9\":1,\"\\u00c9\":2,\"\xc3\xa9\":3}") == dup);  // U+00E9 escaped and in UTF-8
    CHECK(scan("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}") == dup);
    CHECK(scan(R"({"a/b":1,"a\/b":2})") == dup);
    CHECK(scan(R"({"":1,"":2})") == dup);
    CHECK(scan(R"({"x":{"a":1,"a":2}})") == dup);                    // nested
    CHECK(scan(R"({"x":[1,{"y":{"a":1,"b":2,"a":3}}]})") == dup);
    CHECK(scan(R"({"a":1,"ab":2,"b":3,"A":4,"\u0061b":{"a":1}})") == dup);  // "ab" twice
    // Not duplicates: different names, and equal names in different objects.
    CHECK(scan(R"({"a":1,"ab":2,"b":3,"A":4,"\u00e9":5,"e":6})") == j::scan_result::ok);
    CHECK(scan(R"({"a":{"a":{"a":1}},"l":[{"a":1},{"a":2}],"b":{"a":1}})") == j::scan_result::ok);
    // Beyond the 1024 names kept in the scanner's fixed table, at both levels.
    for (const bool nested : {false, true}) {
        std::string many = nested ? R"({"n":{)" : "{";
        for (int i = 0; i < 1100; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
        const std::string close = nested ? "}}" : "}";
        INFO("nested " << nested);
        CHECK(scan(many + close) == j::scan_result::ok);
        CHECK(scan(many + R"(,"k1099":0)" + close) == dup);
        CHECK(scan(many + R"(,"k0":0)" + close) == dup);
        CHECK(scan(many + R"(,"k10\u0039\u0039":0)" + close) == dup);
        CHECK(scan(many + R"(,"k1100":0)" + close) == j::scan_result::ok);
        const std::string late = many + R"(,"k1050":0)" + close;
        allocations = 0;
        counting = true;
        const auto r = scan(late);
        counting = false;
        CHECK(r == dup);
        CHECK(allocations == 0);
    }
    // Duplicate detection allocates nothing, escaped names included.
    const std::string payload =
        R"({"sub":"account-1","session_key":"s","roles":["a"],"permissions":["b"],"exp":1,"x":{"\u0061":1,"b":2},)"
        R"("s\u0075b2":1})";
    const std::string repeated = payload.substr(0, payload.size() - 1) + R"(,"s\u0075b":2})";
    allocations = 0;
    counting = true;
    const auto ok = scan(payload);
    const auto refused = scan(repeated);
    counting = false;
    CHECK(ok == j::scan_result::ok);
    CHECK(refused == dup);
    CHECK(allocations == 0);
}

TEST_CASE("claims: escaped names and values, duplicates refused, lazily built DOM") {
    const std::string secret(32, 'e');
    a::jwt_options o;
    o.require_expiration = false;
    a::jwt_validator v(o, make_set({hmac_key(secret, "")}));
    const auto signer = hmac_signer(secret, "");
    // "s\u0075b" is "sub".
    const std::string payload =
        R"({"s\u0075b":"caf\u00e9","session_key":"second","roles":["a\/b","\ud83d\ude00"],)"
        R"("permissions":["x","y"],"extra":{"n":[1,2]}})";
    const auto token = signed_token(signing_input(R"({"alg":"HS256"})", payload), *signer, A::hs256);
    a::identity id;
    REQUIRE_FALSE(v.validate(token, id));
    CHECK(id.subject == "caf\xc3\xa9");
    CHECK(id.session_key == "second");
    CHECK(id.roles == std::vector<std::string>{"a/b", "\xf0\x9f\x98\x80"});
    CHECK(id.permissions == std::vector<std::string>{"x", "y"});
    // A repeated name is refused rather than "last wins" (nlohmann, and so
    // identity::claim(), would keep the last one): here two session keys,
    // and "sub" both escaped and not.
    a::identity untouched;
    for (const char* dup : {R"({"sub":"a","session_key":"first","session_key":"second"})",
                            R"({"s\u0075b":"admin","sub":"a","session_key":"s"})"})
        CHECK(v.validate(signed_token(signing_input(R"({"alg":"HS256"})", dup), *signer, A::hs256), untouched) ==
              auth_errc::payload_duplicate_member);
    CHECK_FALSE(untouched.claims);
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
