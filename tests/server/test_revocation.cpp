// Revocation (§18): host calls and a watched revocation_list close every
// affected connection with 4002 "kicked"; other sessions are unaffected.
#include "harness.hpp"

#include <gatehouse/auth/revocation.hpp>

using namespace gatehouse::test;

namespace {
constexpr const char* session_c = "8b9619ff-8b86-4d11-b42d-00c04fc964bb";

auth::revocation revoked(auth::revocation_scope scope, std::string value) {
    auth::revocation r;
    r.scope = scope;
    r.value = std::move(value);
    return r;
}
}  // namespace

TEST_CASE("revoke_session: store revoked, connection closed 4002, the token no longer attaches") {
    harness h;
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    std::error_code result = make_error_code(s::server_errc::not_running);
    h.gw.revoke_session(session_a, [&](std::error_code ec) { result = ec; });
    h.run_until([&] { return a->closed(); });
    CHECK_FALSE(result);
    CHECK(a->server_close_code() == 4002);
    CHECK(a->server_close_reason() == "kicked");
    CHECK_FALSE(b->closed());
    auto again = h.upgrade_with("Bearer " + token("alice", session_a));
    h.run_until([&] { return again->closed(); });
    CHECK(again->server_close_code() == 4002);
    // Revoking an unknown session reports the store's error and closes nothing.
    h.gw.revoke_session(session_c, [&](std::error_code ec) { result = ec; });
    CHECK(result == session::session_errc::not_found);
}

TEST_CASE("revoke_account: every session of the account is closed") {
    harness h;
    auto a1 = h.connect(token("alice", session_a));
    auto a2 = h.connect(token("alice", session_b));
    auto b = h.connect(token("bob", session_c));
    std::size_t revoked = 0;
    h.gw.revoke_account("alice", [&](std::error_code ec, std::size_t n) {
        CHECK_FALSE(ec);
        revoked = n;
    });
    h.run_until([&] { return a1->closed() && a2->closed(); });
    CHECK(revoked == 2);
    CHECK(a1->server_close_code() == 4002);
    CHECK(a2->server_close_code() == 4002);
    h.settle();
    CHECK_FALSE(b->closed());
}

TEST_CASE("watch_revocations: token, session and account revocations close the affected connections") {
    harness h;
    auto list = std::make_shared<auth::memory_revocation_list>();
    h.gw.watch_revocations(list);
    auto a = h.connect(token("alice", session_a));
    auto b = h.connect(token("bob", session_b));
    auto c = h.connect(token("carol", session_c));

    CHECK_FALSE(list->revoke(revoked(auth::revocation_scope::token, std::string("jti-") + session_a)));
    h.run_until([&] { return a->closed(); });
    CHECK(a->server_close_code() == 4002);

    CHECK_FALSE(list->revoke(revoked(auth::revocation_scope::session, session_b)));
    h.run_until([&] { return b->closed(); });
    CHECK(b->server_close_code() == 4002);

    CHECK_FALSE(list->revoke(revoked(auth::revocation_scope::account, "nobody")));
    h.settle();
    CHECK_FALSE(c->closed());

    // After unwatching, revocations no longer close connections.
    h.gw.watch_revocations(nullptr);
    CHECK_FALSE(list->revoke(revoked(auth::revocation_scope::account, "carol")));
    h.settle();
    CHECK_FALSE(c->closed());
    h.gw.watch_revocations(list);
    CHECK_FALSE(list->revoke(revoked(auth::revocation_scope::account, "carol")));
    h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 4002);
}
