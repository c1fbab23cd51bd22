// The in-memory revocation list: scopes, expiry, capacity, listeners.
#include <gatehouse/auth/revocation.hpp>

#include <doctest/doctest.h>

#include <vector>

namespace a = gatehouse::auth;
using gatehouse::auth::auth_errc;
using std::chrono::seconds;

namespace {
a::identity who(const char* token, const char* session, const char* account) {
    a::identity id;
    id.token_id = token;
    id.session_key = session;
    id.subject = account;
    return id;
}
}  // namespace

TEST_CASE("revocation: token, session and account scopes, with expiry") {
    a::manual_clock clock;
    a::memory_revocation_options o;
    o.clock = clock.source();
    a::memory_revocation_list list(o);
    const auto id = who("jti-1", "session-1", "account-1");
    CHECK_FALSE(list.check(id));

    REQUIRE_FALSE(list.revoke({a::revocation_scope::account, "account-1", clock.now() + seconds(300)}));
    CHECK(list.check(id) == auth_errc::account_revoked);
    REQUIRE_FALSE(list.revoke({a::revocation_scope::session, "session-1", clock.now() + seconds(200)}));
    CHECK(list.check(id) == auth_errc::session_revoked);
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "jti-1", clock.now() + seconds(100)}));
    CHECK(list.check(id) == auth_errc::token_revoked);
    CHECK(list.is_revoked(a::revocation_scope::session, "session-1"));
    CHECK_FALSE(list.is_revoked(a::revocation_scope::token, "session-1"));  // scopes are separate
    CHECK_FALSE(list.check(who("jti-2", "session-2", "account-2")));
    CHECK_FALSE(list.check(who("", "", "")));  // empty fields are never revoked

    clock.advance(seconds(100));
    CHECK(list.check(id) == auth_errc::session_revoked);
    clock.advance(seconds(100));
    CHECK(list.check(id) == auth_errc::account_revoked);
    clock.advance(seconds(100));
    CHECK_FALSE(list.check(id));
    CHECK(list.size() == 3);
    CHECK(list.purge_expired() == 3);
    CHECK(list.size() == 0);

    // Revoking again extends, never shortens.
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "t", clock.now() + seconds(100)}));
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "t", clock.now() + seconds(10)}));
    clock.advance(seconds(50));
    CHECK(list.is_revoked(a::revocation_scope::token, "t"));
    // Permanent by default.
    REQUIRE_FALSE(list.revoke({a::revocation_scope::account, "banned"}));
    clock.advance(seconds(1000000000));
    CHECK(list.is_revoked(a::revocation_scope::account, "banned"));
    CHECK(list.revoke({a::revocation_scope::account, ""}) == auth_errc::empty_credential);
}

TEST_CASE("revocation: capacity, reclaimed from expired entries first") {
    a::manual_clock clock;
    a::memory_revocation_options o;
    o.clock = clock.source();
    o.max_entries = 2;
    a::memory_revocation_list list(o);
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "a", clock.now() + seconds(10)}));
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "b", clock.now() + seconds(20)}));
    CHECK(list.revoke({a::revocation_scope::token, "c", clock.now() + seconds(20)}) == auth_errc::revocation_list_full);
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "a", clock.now() + seconds(30)}));  // update, not insert
    clock.advance(seconds(25));
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "c", clock.now() + seconds(20)}));  // "b" reclaimed
    CHECK(list.size() == 2);
    CHECK_THROWS_AS(a::memory_revocation_list(a::memory_revocation_options{0, a::system_time()}), std::invalid_argument);
}

TEST_CASE("revocation: listeners hear every revocation until unsubscribed") {
    a::manual_clock clock;
    a::memory_revocation_options o;
    o.clock = clock.source();
    a::memory_revocation_list list(o);
    std::vector<std::string> heard_a;
    std::vector<std::string> heard_b;
    auto sub_a = list.subscribe([&](const a::revocation& r) { heard_a.push_back(r.value); });
    auto sub_b = list.subscribe([&](const a::revocation& r) {
        heard_b.push_back(r.value);
        throw std::runtime_error("a throwing listener does not stop the others");
    });
    REQUIRE_FALSE(list.revoke({a::revocation_scope::session, "s1", clock.now() + seconds(5)}));
    // Already expired: not kept, but still announced (connections close now).
    REQUIRE_FALSE(list.revoke({a::revocation_scope::account, "acc", clock.now() - seconds(1)}));
    CHECK_FALSE(list.is_revoked(a::revocation_scope::account, "acc"));
    sub_b.reset();
    CHECK_FALSE(sub_b);
    bool completed = false;
    list.async_revoke({a::revocation_scope::token, "t1", clock.now() + seconds(5)}, [&](std::error_code ec) {
        completed = true;
        CHECK_FALSE(ec);
    });
    CHECK(completed);
    CHECK(heard_a == std::vector<std::string>{"s1", "acc", "t1"});
    CHECK(heard_b == std::vector<std::string>{"s1", "acc"});

    // Moving a subscription keeps it; destroying it ends it.
    {
        a::revocation_subscription moved = std::move(sub_a);
        REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "t2"}));
    }
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "t3"}));
    CHECK(heard_a.back() == "t2");

    // A listener may unsubscribe itself; a subscription may outlive the list.
    a::revocation_subscription self;
    int calls = 0;
    self = list.subscribe([&](const a::revocation&) {
        ++calls;
        self.reset();
    });
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "t4"}));
    REQUIRE_FALSE(list.revoke({a::revocation_scope::token, "t5"}));
    CHECK(calls == 1);
    a::revocation_subscription outliving;
    {
        a::memory_revocation_list temporary;
        outliving = temporary.subscribe([](const a::revocation&) {});
    }
    outliving.reset();

    bool checked = false;
    list.async_check(who("t1", "", ""), [&](std::error_code ec) {
        checked = true;
        CHECK(ec == auth_errc::token_revoked);
    });
    CHECK(checked);
}
