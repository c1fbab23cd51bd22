// Conformance kit for session_store implementations: doctest test cases that
// check the contract of gatehouse/session/session_store.hpp against any store.
//
// Usage, in exactly one translation unit of a doctest test program:
//
//     #include <gatehouse/testing/session_store_conformance.hpp>
//
//     struct my_store_factory {
//         // A fresh, empty store honouring `options` (its idle timeout, max
//         // lifetime, tombstone retention, max reconnect window and limits).
//         // The factory object lives longer than every store it makes and may
//         // own what they need (a server, an io_context thread...).
//         std::shared_ptr<gatehouse::session::session_store>
//         make(const gatehouse::session::session_store_options& options);
//     };
//     TYPE_TO_STRING(my_store_factory);  // optional: names the test cases
//     GATEHOUSE_SESSION_STORE_CONFORMANCE(my_store_factory);
//
// The expiry cases sleep for a few hundred milliseconds of real time, since
// a store may delegate expiry to its backend's own clock (Redis TTLs). The
// whole kit takes a few seconds per store.
#pragma once

#include <gatehouse/session/session_store.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse::testing {

namespace conformance {

using namespace std::chrono_literals;
using session::session_errc;
using session::session_record;
using session::session_store;

/// How long the kit waits for any completion before failing (a store that
/// never calls back must fail the test, not hang it).
inline constexpr auto completion_deadline = std::chrono::seconds(10);

template <class T>
struct outcome {
    std::error_code ec;
    T value{};
};

/// Runs `start(completion)` and waits for the completion, on whatever thread
/// it arrives.
template <class T, class Start>
outcome<T> await(Start&& start) {
    auto promise = std::make_shared<std::promise<outcome<T>>>();
    auto future = promise->get_future();
    auto called = std::make_shared<std::atomic<int>>(0);
    start([promise, called](std::error_code ec, T value) {
        if (called->fetch_add(1) == 0) promise->set_value(outcome<T>{ec, std::move(value)});
    });
    if (future.wait_for(completion_deadline) != std::future_status::ready) {
        FAIL("session_store completion not called within 10 s");
    }
    return future.get();
}

inline std::error_code await_done(const std::function<void(session_store::done_completion)>& start) {
    return await<int>([&](auto complete) {
               start([complete](std::error_code ec) { complete(ec, 0); });
           })
        .ec;
}

inline outcome<session_record> create(session_store& s, session_record r) {
    return await<session_record>([&](auto c) { s.create(std::move(r), std::move(c)); });
}
inline outcome<session_record> load(session_store& s, const std::string& id) {
    return await<session_record>([&](auto c) { s.load(id, std::move(c)); });
}
inline std::error_code touch(session_store& s, const std::string& id) {
    return await_done([&](auto c) { s.touch(id, std::move(c)); });
}
inline outcome<session_record> update(session_store& s, session_record r) {
    return await<session_record>([&](auto c) { s.update(std::move(r), std::move(c)); });
}
inline std::error_code revoke(session_store& s, const std::string& id) {
    return await_done([&](auto c) { s.revoke(id, std::move(c)); });
}
inline outcome<std::size_t> revoke_account(session_store& s, const std::string& account) {
    return await<std::size_t>([&](auto c) { s.revoke_account(account, std::move(c)); });
}
inline outcome<std::vector<session_record>> list_account(session_store& s, const std::string& account) {
    return await<std::vector<session_record>>([&](auto c) { s.list_account(account, std::move(c)); });
}
inline outcome<session::reconnect_token> issue(session_store& s, const std::string& id, std::chrono::milliseconds w) {
    return await<session::reconnect_token>([&](auto c) { s.issue_reconnect_token(id, w, std::move(c)); });
}
inline outcome<session_record> consume(session_store& s, const std::string& token) {
    return await<session_record>([&](auto c) { s.consume_reconnect_token(token, std::move(c)); });
}

/// Account ids unique per run, so that stores sharing a backend between test
/// cases do not see each other's sessions.
inline std::string unique_account(const char* name) {
    static std::atomic<unsigned> counter{0};
    return std::string(name) + "-" + session::random_session_id().substr(0, 8) + "-" +
           std::to_string(counter.fetch_add(1));
}

inline session_record sample_record(std::string account) {
    session_record r;
    r.account_id = std::move(account);
    r.roles = {"player", "moderator"};
    r.permissions = {"account:/account/get", "game:/game/join"};
    r.token_expires_at = session::now_ms() + std::chrono::minutes(15);
    r.node_id = "node-a";
    r.attributes = {{"region", "eu-west"}, {"client", "ts-1.2"}};
    return r;
}

inline void check_same_content(const session_record& a, const session_record& b) {
    CHECK(a.session_id == b.session_id);
    CHECK(a.account_id == b.account_id);
    CHECK(a.roles == b.roles);
    CHECK(a.permissions == b.permissions);
    CHECK(a.token_expires_at == b.token_expires_at);
    CHECK(a.node_id == b.node_id);
    CHECK(a.attributes == b.attributes);
    CHECK(a.created_at == b.created_at);
}

inline session::session_store_options basic_options() {
    return session::session_store_options{};
}

/// Short durations for the expiry cases: everything else at its default.
inline session::session_store_options expiry_options() {
    session::session_store_options o;
    o.idle_timeout = 400ms;
    o.tombstone_retention = 400ms;
    return o;
}

}  // namespace conformance
}  // namespace gatehouse::testing

// doctest registers template test cases at namespace scope, where
// GATEHOUSE_SESSION_STORE_CONFORMANCE can name them.
// clang-format off
TEST_CASE_TEMPLATE_DEFINE("session_store conformance: records, revocation, tokens", Factory,
                          gatehouse_session_store_conformance_basic) {
    using namespace gatehouse::testing::conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    const auto options = basic_options();
    std::shared_ptr<session_store> store = factory.make(options);
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto account = unique_account("acct");

    SUBCASE("create assigns an id and times; load returns what was stored") {
        const auto before = session::now_ms();
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        const auto after = session::now_ms();
        CHECK(session::is_session_id(created.value.session_id));
        CHECK(created.value.created_at >= before);
        CHECK(created.value.created_at <= after);
        CHECK(created.value.last_activity == created.value.created_at);
        CHECK(created.value.expires_at == created.value.created_at + options.idle_timeout);
        CHECK(created.value.reconnect_expires_at == session::time_point{});
        auto loaded = load(s, created.value.session_id);
        REQUIRE_FALSE(loaded.ec);
        check_same_content(loaded.value, created.value);
        auto expected = sample_record(account);
        CHECK(loaded.value.roles == expected.roles);
        CHECK(loaded.value.attributes == expected.attributes);
    }

    SUBCASE("create keeps a caller-chosen id; a second create with it fails") {
        auto r = sample_record(account);
        r.session_id = session::random_session_id();
        auto first = create(s, r);
        REQUIRE_FALSE(first.ec);
        CHECK(first.value.session_id == r.session_id);
        CHECK(create(s, r).ec == session_errc::already_exists);
        CHECK_FALSE(load(s, r.session_id).ec);
    }

    SUBCASE("create rejects bad records with specific errors") {
        auto r = sample_record(account);
        r.session_id = "not-a-guid";
        CHECK(create(s, r).ec == session_errc::invalid_session_id);
        r.session_id = "0123ABCD-0000-4000-8000-000000000000";  // upper case is not the stored form
        CHECK(create(s, r).ec == session_errc::invalid_session_id);

        r = sample_record("");
        CHECK(create(s, r).ec == session_errc::invalid_account_id);
        r = sample_record(std::string(options.limits.max_account_id_size + 1, 'a'));
        CHECK(create(s, r).ec == session_errc::invalid_account_id);

        r = sample_record(account);
        for (std::size_t i = 0; i <= options.limits.max_attributes; ++i) r.attributes["k" + std::to_string(i)] = "v";
        CHECK(create(s, r).ec == session_errc::too_many_attributes);

        r = sample_record(account);
        r.attributes["big"] = std::string(options.limits.max_attribute_value_size + 1, 'x');
        CHECK(create(s, r).ec == session_errc::attribute_too_large);
        r = sample_record(account);
        r.attributes[std::string(options.limits.max_attribute_key_size + 1, 'k')] = "v";
        CHECK(create(s, r).ec == session_errc::attribute_too_large);
        r = sample_record(account);
        r.attributes[""] = "v";
        CHECK(create(s, r).ec == session_errc::attribute_too_large);

        r = sample_record(account);
        r.roles.assign(options.limits.max_roles + 1, "role");
        CHECK(create(s, r).ec == session_errc::record_too_large);
        r = sample_record(account);
        r.permissions.push_back(std::string(options.limits.max_name_size + 1, 'p'));
        CHECK(create(s, r).ec == session_errc::record_too_large);
        r = sample_record(account);
        r.node_id.assign(options.limits.max_name_size + 1, 'n');
        CHECK(create(s, r).ec == session_errc::record_too_large);

        // Exactly at the limits is fine.
        r = sample_record(account);
        r.attributes.clear();
        for (std::size_t i = 0; i < options.limits.max_attributes; ++i)
            r.attributes[std::string(options.limits.max_attribute_key_size - 3, 'k') + std::to_string(100 + i)] =
                std::string(options.limits.max_attribute_value_size, 'v');
        auto ok = create(s, r);
        REQUIRE_FALSE(ok.ec);
        CHECK(load(s, ok.value.session_id).value.attributes == r.attributes);
        // Nothing rejected was stored.
        CHECK(list_account(s, account).value.size() == 1);
    }

    SUBCASE("unknown and malformed ids") {
        const auto unknown = session::random_session_id();
        CHECK(load(s, unknown).ec == session_errc::not_found);
        CHECK(touch(s, unknown) == session_errc::not_found);
        auto r = sample_record(account);
        r.session_id = unknown;
        CHECK(update(s, r).ec == session_errc::not_found);
        CHECK(revoke(s, unknown) == session_errc::not_found);
        CHECK(issue(s, unknown, 1min).ec == session_errc::not_found);
        CHECK(load(s, "").ec == session_errc::invalid_session_id);
        CHECK(load(s, "{00000000-0000-0000-0000-000000000000}").ec == session_errc::invalid_session_id);
        CHECK(touch(s, "x") == session_errc::invalid_session_id);
        CHECK(revoke(s, "x") == session_errc::invalid_session_id);
        CHECK(issue(s, "x", 1min).ec == session_errc::invalid_session_id);
        CHECK(revoke_account(s, "").ec == session_errc::invalid_account_id);
        CHECK(list_account(s, "").ec == session_errc::invalid_account_id);
        CHECK(list_account(s, unique_account("nobody")).value.empty());
        CHECK(revoke_account(s, unique_account("nobody")).value == 0);
    }

    SUBCASE("touch records activity") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        std::this_thread::sleep_for(30ms);
        REQUIRE_FALSE(touch(s, created.value.session_id));
        auto loaded = load(s, created.value.session_id);
        REQUIRE_FALSE(loaded.ec);
        CHECK(loaded.value.last_activity >= created.value.created_at + 25ms);
        CHECK(loaded.value.expires_at == loaded.value.last_activity + options.idle_timeout);
        CHECK(loaded.value.created_at == created.value.created_at);
    }

    SUBCASE("update replaces the mutable fields only") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        session_record change;
        change.session_id = created.value.session_id;
        change.account_id = "someone-else";  // ignored
        change.roles = {"admin"};
        change.permissions = {"admin:/ban"};
        change.node_id = "node-b";
        change.token_expires_at = created.value.token_expires_at + 1h;
        change.attributes = {{"region", "us-east"}};
        auto updated = update(s, change);
        REQUIRE_FALSE(updated.ec);
        auto loaded = load(s, created.value.session_id);
        REQUIRE_FALSE(loaded.ec);
        for (const auto* r : {&updated.value, &loaded.value}) {
            CHECK(r->account_id == account);
            CHECK(r->created_at == created.value.created_at);
            CHECK(r->roles == change.roles);
            CHECK(r->permissions == change.permissions);
            CHECK(r->node_id == "node-b");
            CHECK(r->token_expires_at == change.token_expires_at);
            CHECK(r->attributes == change.attributes);
        }
        // A rejected update changes nothing.
        change.attributes["big"] = std::string(options.limits.max_attribute_value_size + 1, 'x');
        CHECK(update(s, change).ec == session_errc::attribute_too_large);
        change.session_id = "bad";
        CHECK(update(s, change).ec == session_errc::invalid_session_id);
        CHECK(load(s, created.value.session_id).value.attributes == loaded.value.attributes);
    }

    SUBCASE("revoke ends a session for every operation") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        const auto id = created.value.session_id;
        auto token = issue(s, id, 1min);
        REQUIRE_FALSE(token.ec);
        REQUIRE_FALSE(revoke(s, id));
        CHECK(load(s, id).ec == session_errc::revoked);
        CHECK(touch(s, id) == session_errc::revoked);
        CHECK(update(s, created.value).ec == session_errc::revoked);
        CHECK(revoke(s, id) == session_errc::revoked);
        CHECK(issue(s, id, 1min).ec == session_errc::revoked);
        CHECK(consume(s, token.value.token).ec == session_errc::token_invalid);
        CHECK(list_account(s, account).value.empty());
    }

    SUBCASE("revoke_account and list_account") {
        const auto other = unique_account("other");
        std::set<std::string> ids;
        for (int i = 0; i < 3; ++i) ids.insert(create(s, sample_record(account)).value.session_id);
        auto bystander = create(s, sample_record(other));
        REQUIRE_FALSE(bystander.ec);
        REQUIRE(ids.size() == 3);

        auto listed = list_account(s, account);
        REQUIRE_FALSE(listed.ec);
        std::set<std::string> listed_ids;
        for (const auto& r : listed.value) {
            listed_ids.insert(r.session_id);
            CHECK(r.account_id == account);
            CHECK(r.roles == sample_record(account).roles);
        }
        CHECK(listed_ids == ids);

        REQUIRE_FALSE(revoke(s, *ids.begin()));
        CHECK(list_account(s, account).value.size() == 2);

        auto revoked = revoke_account(s, account);
        REQUIRE_FALSE(revoked.ec);
        CHECK(revoked.value == 2);
        for (const auto& id : ids) CHECK(load(s, id).ec == session_errc::revoked);
        CHECK(list_account(s, account).value.empty());
        CHECK(revoke_account(s, account).value == 0);
        CHECK_FALSE(load(s, bystander.value.session_id).ec);
        CHECK(list_account(s, other).value.size() == 1);
    }

    SUBCASE("a reconnection token works exactly once") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        const auto id = created.value.session_id;
        const auto before = session::now_ms();
        auto token = issue(s, id, 5min);
        REQUIRE_FALSE(token.ec);
        CHECK(session::is_reconnect_token(token.value.token));
        CHECK(token.value.expires_at >= before + 5min);
        CHECK(token.value.expires_at <= session::now_ms() + 5min);
        CHECK(load(s, id).value.reconnect_expires_at == token.value.expires_at);

        auto consumed = consume(s, token.value.token);
        REQUIRE_FALSE(consumed.ec);
        CHECK(consumed.value.session_id == id);
        CHECK(consumed.value.account_id == account);
        CHECK(consumed.value.reconnect_expires_at == session::time_point{});
        CHECK(consumed.value.last_activity >= before);
        CHECK(load(s, id).value.reconnect_expires_at == session::time_point{});

        CHECK(consume(s, token.value.token).ec == session_errc::token_consumed);
        CHECK(consume(s, token.value.token).ec == session_errc::token_consumed);
        CHECK(consume(s, "").ec == session_errc::token_invalid);
        CHECK(consume(s, "not a token").ec == session_errc::token_invalid);
        CHECK(consume(s, session::random_reconnect_token()).ec == session_errc::token_invalid);
        auto mangled = token.value.token;
        mangled[0] = mangled[0] == 'A' ? 'B' : 'A';
        CHECK(consume(s, mangled).ec == session_errc::token_invalid);
        CHECK_FALSE(load(s, id).ec);  // consuming does not end the session
    }

    SUBCASE("a new token supersedes the previous one") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        auto first = issue(s, created.value.session_id, 1min);
        auto second = issue(s, created.value.session_id, 2min);
        REQUIRE_FALSE(first.ec);
        REQUIRE_FALSE(second.ec);
        CHECK(first.value.token != second.value.token);
        CHECK(consume(s, first.value.token).ec == session_errc::token_invalid);
        CHECK_FALSE(consume(s, second.value.token).ec);
    }

    SUBCASE("reconnection windows are bounded") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        CHECK(issue(s, created.value.session_id, 0ms).ec == session_errc::invalid_window);
        CHECK(issue(s, created.value.session_id, -5ms).ec == session_errc::invalid_window);
        CHECK(issue(s, created.value.session_id, options.max_reconnect_window + 1ms).ec ==
              session_errc::invalid_window);
        CHECK_FALSE(issue(s, created.value.session_id, options.max_reconnect_window).ec);
    }

    SUBCASE("racing consumers: exactly one wins") {
        constexpr int rounds = 10, racers = 8;
        for (int round = 0; round < rounds; ++round) {
            auto created = create(s, sample_record(account));
            REQUIRE_FALSE(created.ec);
            auto token = issue(s, created.value.session_id, 1min);
            REQUIRE_FALSE(token.ec);
            std::atomic<int> winners{0}, consumed{0}, other{0};
            std::atomic<bool> go{false};
            std::vector<std::thread> threads;
            for (int i = 0; i < racers; ++i)
                threads.emplace_back([&] {
                    while (!go.load()) std::this_thread::yield();
                    auto result = consume(s, token.value.token);
                    if (!result.ec) ++winners;
                    else if (result.ec == session_errc::token_consumed) ++consumed;
                    else ++other;
                });
            go = true;
            for (auto& t : threads) t.join();
            CHECK(winners.load() == 1);
            CHECK(consumed.load() == racers - 1);
            CHECK(other.load() == 0);
        }
    }
}

TEST_CASE_TEMPLATE_DEFINE("session_store conformance: expiry", Factory, gatehouse_session_store_conformance_expiry) {
    using namespace gatehouse::testing::conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    const auto options = expiry_options();  // idle 400 ms, retention 400 ms
    std::shared_ptr<session_store> store = factory.make(options);
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto account = unique_account("expiry");

    SUBCASE("an idle session expires; list_account forgets it") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        const auto id = created.value.session_id;
        std::this_thread::sleep_for(options.idle_timeout + 150ms);
        CHECK(load(s, id).ec == session_errc::expired);
        CHECK(touch(s, id) == session_errc::expired);
        CHECK(update(s, created.value).ec == session_errc::expired);
        CHECK(issue(s, id, 1min).ec == session_errc::expired);
        CHECK(revoke(s, id) == session_errc::expired);
        CHECK(list_account(s, account).value.empty());
        CHECK(revoke_account(s, account).value == 0);
    }

    SUBCASE("touch slides the expiry") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        const auto id = created.value.session_id;
        for (int i = 0; i < 4; ++i) {
            std::this_thread::sleep_for(options.idle_timeout / 2);
            REQUIRE_FALSE(touch(s, id));
        }
        // 800 ms after creation, twice the idle timeout: still live.
        auto loaded = load(s, id);
        REQUIRE_FALSE(loaded.ec);
        CHECK(loaded.value.expires_at > session::now_ms());
        std::this_thread::sleep_for(options.idle_timeout + 150ms);
        CHECK(load(s, id).ec == session_errc::expired);
    }

    SUBCASE("an outstanding reconnection token holds the session for its window") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        const auto id = created.value.session_id;
        auto token = issue(s, id, 3 * options.idle_timeout);
        REQUIRE_FALSE(token.ec);
        std::this_thread::sleep_for(options.idle_timeout + 150ms);
        auto held = load(s, id);
        REQUIRE_FALSE(held.ec);
        CHECK(held.value.expires_at == token.value.expires_at);
        CHECK(list_account(s, account).value.size() == 1);
        auto consumed = consume(s, token.value.token);
        REQUIRE_FALSE(consumed.ec);
        CHECK(consumed.value.session_id == id);
        // Consuming counts as activity: the idle timeout runs from now.
        CHECK(consumed.value.expires_at == consumed.value.last_activity + options.idle_timeout);
        CHECK_FALSE(touch(s, id));
    }

    SUBCASE("a token past its window is invalid, and its session expires") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        auto token = issue(s, created.value.session_id, 200ms);
        REQUIRE_FALSE(token.ec);
        std::this_thread::sleep_for(options.idle_timeout + 150ms);
        CHECK(consume(s, token.value.token).ec == session_errc::token_invalid);
        CHECK(load(s, created.value.session_id).ec == session_errc::expired);
    }

    SUBCASE("a consumed token stays consumed for its window, then is unknown") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        auto token = issue(s, created.value.session_id, 300ms);
        REQUIRE_FALSE(token.ec);
        REQUIRE_FALSE(consume(s, token.value.token).ec);
        CHECK(consume(s, token.value.token).ec == session_errc::token_consumed);
        std::this_thread::sleep_for(450ms);
        CHECK(consume(s, token.value.token).ec == session_errc::token_invalid);
    }

    SUBCASE("a revoked session is reported revoked for the retention, then not found") {
        auto created = create(s, sample_record(account));
        REQUIRE_FALSE(created.ec);
        // Keep it alive past the retention so that only revocation ends it.
        auto token = issue(s, created.value.session_id, 1min);
        REQUIRE_FALSE(token.ec);
        REQUIRE_FALSE(revoke(s, created.value.session_id));
        CHECK(load(s, created.value.session_id).ec == session_errc::revoked);
        std::this_thread::sleep_for(options.tombstone_retention + 150ms);
        CHECK(load(s, created.value.session_id).ec == session_errc::not_found);
    }
}

TEST_CASE_TEMPLATE_DEFINE("session_store conformance: max lifetime", Factory,
                          gatehouse_session_store_conformance_lifetime) {
    using namespace gatehouse::testing::conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    auto options = basic_options();
    options.max_lifetime = 400ms;
    std::shared_ptr<session_store> store = factory.make(options);
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto account = unique_account("lifetime");

    auto created = create(s, sample_record(account));
    REQUIRE_FALSE(created.ec);
    const auto id = created.value.session_id;
    CHECK(created.value.expires_at == created.value.created_at + options.max_lifetime);
    auto token = issue(s, id, 1min);  // a token does not extend the lifetime
    REQUIRE_FALSE(token.ec);
    REQUIRE_FALSE(touch(s, id));
    std::this_thread::sleep_for(options.max_lifetime + 150ms);
    CHECK(load(s, id).ec == session_errc::expired);
    CHECK(update(s, created.value).ec == session_errc::expired);
    CHECK(list_account(s, account).value.empty());
    CHECK(consume(s, token.value.token).ec == session_errc::expired);
}
// clang-format on

/// Runs every conformance case against the store `Factory` makes.
#define GATEHOUSE_SESSION_STORE_CONFORMANCE(Factory)                                      \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_session_store_conformance_basic, Factory);        \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_session_store_conformance_expiry, Factory);       \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_session_store_conformance_lifetime, Factory)
