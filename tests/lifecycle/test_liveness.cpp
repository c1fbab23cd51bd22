// A connected session stays alive in the session store (issue 12, item 1):
// the gateway refreshes (touches) each connected session well within the
// store's idle_timeout, never per message, and ends it at max_lifetime.
//
// Before this, a session that kept calling expired after idle_timeout:
// store->load said `expired`, a reconnectable close issued no reconnection
// token, set_permissions was not saved and a revocation did not stick. Each
// of those is checked here after 3 x idle_timeout of activity.
#include "../server/harness.hpp"
#include "../server/reconnect_helpers.hpp"
#include "forwarding_store.hpp"

#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/session/memory_session_store.hpp>

#include <atomic>
#include <future>

using namespace gatehouse::test;

namespace {

using ms = std::chrono::milliseconds;

std::shared_ptr<session::memory_session_store> store_with(ms idle, ms max_lifetime = std::chrono::hours(24),
                                                          std::function<session::time_point()> clock = nullptr) {
    session::memory_session_store::options o;
    o.idle_timeout = idle;
    o.max_lifetime = max_lifetime;
    o.tombstone_retention = std::chrono::minutes(5);
    o.clock = std::move(clock);
    return std::make_shared<session::memory_session_store>(o);
}

/// The store's answer to load, waited for.
std::error_code load_error(session::session_store& store, const std::string& id,
                           session::session_record* out = nullptr) {
    std::promise<std::pair<std::error_code, session::session_record>> answer;
    store.load(id, [&](std::error_code ec, session::session_record r) { answer.set_value({ec, std::move(r)}); });
    auto result = answer.get_future().get();
    if (out) *out = std::move(result.second);
    return result.first;
}

/// Calls /echo every `every` for `how_long`; every call must be answered.
void keep_calling(harness& h, s::memory_client& c, ms every, ms how_long) {
    const auto echo = harness::guid_of(c, "/echo");
    const auto until = std::chrono::steady_clock::now() + how_long;
    std::uint64_t id = 1;
    while (std::chrono::steady_clock::now() < until) {
        const auto reply = h.call(c, harness::request(echo, "{}", p::message_flags::none, 0, 1, id), id);
        REQUIRE(reply.frame.code == p::response_code::ok);
        ++id;
        h.settle(every);
    }
}

/// A memory store whose touches can fail.
class flaky_store final : public forwarding_store {
public:
    using forwarding_store::forwarding_store;
    std::atomic<bool> fail_touches{false};
    std::atomic<int> touches{0};

    void touch(std::string_view id, done_completion done) override {
        touches.fetch_add(1);
        if (fail_touches.load()) {
            done(session::session_errc::backend_unavailable);
            return;
        }
        inner_->touch(id, std::move(done));
    }
};

/// A gateway on the memory transport over any session_store (the harness
/// owns a memory store; this one takes the test's).
struct store_fixture {
    explicit store_fixture(s::gateway_options o, std::shared_ptr<session::session_store> store_)
        : validator(std::make_shared<scripted_validator>()), store(std::move(store_)),
          gw(std::move(o), validator, store), transport(io, gw.transport_side()) {
        add_standard_endpoints(gw, std::make_shared<held_calls>());
    }
    ~store_fixture() {
        for (auto& c : clients)
            if (!c->closed()) c->close();
        run_until([&] {
            for (auto& c : clients)
                if (!c->closed()) return false;
            return true;
        }, ms(2000));
    }
    bool run_until(const std::function<bool()>& done, ms timeout = ms(3000)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            if (io.stopped()) io.restart();
            io.run_one_for(ms(5));
        }
        return true;
    }
    std::shared_ptr<s::memory_client> connect(const std::string& bearer) {
        s::memory_upgrade u;
        u.headers.push_back({"Authorization", "Bearer " + bearer});
        auto c = transport.connect(std::move(u));
        clients.push_back(c);
        REQUIRE(run_until([&] { return harness::manifest_of(*c).has_value() || c->closed(); }));
        REQUIRE_FALSE(c->closed());
        return c;
    }
    asio::io_context io;
    std::shared_ptr<scripted_validator> validator;
    std::shared_ptr<session::session_store> store;
    s::gateway gw;
    s::memory_transport transport;
    std::vector<std::shared_ptr<s::memory_client>> clients;
};

}  // namespace

TEST_CASE("liveness: a session calling for 3 x idle_timeout stays alive, and everything that needs it works") {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 64 * 1024;  // parking on: reconnectable closes issue tokens
    harness h(o, store_with(ms(400)));
    add_standard_endpoints(h.gw, std::make_shared<held_calls>());
    auto c = h.connect(token("alice", session_a));
    keep_calling(h, *c, ms(100), ms(1200));

    session::session_record record;
    CHECK(load_error(*h.store, session_a, &record) == std::error_code{});
    const auto refreshes = h.gw.stats().session_refreshes;
    MESSAGE("refreshes in 1.2 s with idle_timeout 400 ms: " << refreshes);
    // A quarter of idle_timeout: about 12 in 1.2 s; never one per message.
    CHECK(refreshes >= 6);
    CHECK(refreshes <= 20);
    CHECK(h.gw.stats().session_refresh_failures == 0);

    // set_permissions is stored.
    REQUIRE_FALSE(h.gw.set_permissions(session_a, {}, {"secret:read"}));
    h.run_until([&] {
        session::session_record r;
        return !load_error(*h.store, session_a, &r) && r.permissions == std::vector<std::string>{"secret:read"};
    });

    // A reconnectable close issues a reconnection token that works.
    REQUIRE_FALSE(h.gw.disconnect(session_a, 4000, "maintenance"));
    h.run_until([&] { return c->closed(); });
    const auto reconnection = reconnection_token_of(*c);
    REQUIRE_FALSE(reconnection.empty());
    auto back = reconnect_with(h, reconnection);
    REQUIRE_FALSE(back->closed());
    CHECK(harness::manifest_of(*back)->value("reason", "") == "session_reconnected");

    // After 3 x idle_timeout more, silent this time, a revocation sticks: the
    // connection is closed with 4002 and the same token is refused with 4002.
    h.settle(ms(1200));
    CHECK_FALSE(back->closed());
    std::promise<std::error_code> revoked;
    h.gw.revoke_session(session_a, [&](std::error_code ec) { revoked.set_value(ec); });
    h.run_until([&] { return back->closed(); });
    CHECK(revoked.get_future().get() == std::error_code{});
    CHECK(back->server_close_code() == 4002);
    auto again = h.upgrade_with("Bearer " + token("alice", session_a));
    h.run_until([&] { return again->closed(); });
    CHECK(again->server_close_code() == 4002);
}

TEST_CASE("liveness: an open but silent connection stays alive, and a drop after that resumes") {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 64 * 1024;
    harness h(o, store_with(ms(400)));
    add_standard_endpoints(h.gw, std::make_shared<held_calls>());
    auto c = h.connect(token("alice", session_a));
    h.settle(ms(1200));
    CHECK_FALSE(c->closed());
    CHECK(load_error(*h.store, session_a) == std::error_code{});
    // The client drops; it comes back with its bearer token (the TS client's
    // way, §13.4) and finds its session, parked meanwhile.
    c->drop();
    wait_parked(h, 1);
    auto back = h.connect(token("alice", session_a));
    REQUIRE_FALSE(back->closed());
    CHECK(harness::manifest_of(*back)->value("reason", "") == "session_reconnected");
    CHECK(h.gw.stats().sessions_resumed == 1);
}

TEST_CASE("liveness: 24 simulated hours of activity keep the session (injected store clock)") {
    std::atomic<std::int64_t> offset_ms{0};
    auto store = store_with(std::chrono::minutes(30), std::chrono::hours(48), [&] {
        return session::now_ms() + ms(offset_ms.load());
    });
    auto o = default_options();
    o.session_refresh_interval = ms(2);  // the store's clock runs 5 minutes per step below
    harness h(o, store);
    add_standard_endpoints(h.gw, std::make_shared<held_calls>());
    auto c = h.connect(token("alice", session_a));

    // A session nobody is connected to, created at the same time: the control.
    std::promise<std::string> idle_id;
    session::session_record idle;
    idle.account_id = "bob";
    store->create(idle, [&](std::error_code, session::session_record r) { idle_id.set_value(r.session_id); });
    const auto control = idle_id.get_future().get();

    for (int step = 0; step < 24 * 12; ++step) {
        offset_ms.fetch_add(5 * 60 * 1000);
        const auto before = h.gw.stats().session_refreshes;
        // Two refreshes after the step: at least one started after it.
        REQUIRE(h.run_until([&] { return h.gw.stats().session_refreshes >= before + 2; }, ms(3000), false));
        if (step == 6) {  // 35 minutes: expired (or already freed, past tombstone_retention)
            const auto ec = load_error(*store, control);
            CHECK((ec == session::session_errc::expired || ec == session::session_errc::not_found));
        }
    }
    session::session_record record;
    REQUIRE(load_error(*store, session_a, &record) == std::error_code{});
    CHECK(record.last_activity >= session::now_ms() + ms(offset_ms.load()) - std::chrono::minutes(6));
    CHECK_FALSE(c->closed());
}

TEST_CASE("liveness: max_lifetime still ends a connected session with 4001") {
    harness h(default_options(), store_with(ms(400), ms(900)));
    add_standard_endpoints(h.gw, std::make_shared<held_calls>());
    auto c = h.connect(token("alice", session_a));
    const auto started = std::chrono::steady_clock::now();
    h.run_until([&] { return c->closed(); }, ms(4000));
    const auto lived = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - started);
    MESSAGE("closed after " << lived.count() << " ms (max_lifetime 900 ms)");
    CHECK(c->server_close_code() == 4001);
    CHECK(c->server_close_reason() == "max lifetime reached");
    CHECK(lived >= ms(700));  // not closed at the first refresh
    const auto names = event_names(*c);
    REQUIRE_FALSE(names.empty());
    CHECK(names.back() == "connect.disconnect-notification");
    CHECK(harness::events(*c).back().value("reason", "") == "session_expired");
    CHECK(harness::events(*c).back().value("reconnectable", true) == false);
}

TEST_CASE("liveness: a store that fails refreshes is counted and retried; the connection stays") {
    auto inner = store_with(ms(2000));
    auto store = std::make_shared<flaky_store>(inner);
    std::vector<std::string> logs;
    std::mutex log_mutex;
    auto o = default_options();
    o.session_refresh_interval = ms(50);
    o.log = [&](s::log_level, std::string_view line) {
        std::lock_guard<std::mutex> lock(log_mutex);
        logs.emplace_back(line);
    };
    store_fixture f(o, store);
    auto c = f.connect(token("alice", session_a));
    store->fail_touches = true;
    // Failures back off from 1 s: wait for two of them.
    REQUIRE(f.run_until([&] { return f.gw.stats().session_refresh_failures >= 2; }, ms(5000)));
    CHECK_FALSE(c->closed());
    {
        std::lock_guard<std::mutex> lock(log_mutex);
        bool logged = false;
        for (const auto& line : logs) {
            if (line.find("could not refresh") != std::string::npos) logged = true;
            CHECK(line.find(session_a) == std::string::npos);  // no session ids, no tokens
            CHECK(line.find("sync|") == std::string::npos);
        }
        CHECK(logged);
    }
    store->fail_touches = false;
    const auto ok_before = f.gw.stats().session_refreshes;
    REQUIRE(f.run_until([&] { return f.gw.stats().session_refreshes > ok_before; }, ms(5000)));
    CHECK_FALSE(c->closed());
    CHECK(load_error(*inner, session_a) == std::error_code{});
}

TEST_CASE("liveness: a refresh the store answers revoked or expired closes the connection") {
    SUBCASE("revoked in the store directly: 4002") {
        auto store = store_with(ms(400));
        harness h(default_options(), store);
        add_standard_endpoints(h.gw, std::make_shared<held_calls>());
        auto c = h.connect(token("alice", session_a));
        store->revoke(session_a, [](std::error_code) {});
        h.run_until([&] { return c->closed(); });
        CHECK(c->server_close_code() == 4002);
    }
    SUBCASE("lost by the store (a store that reports no timing): 4001") {
        auto inner = store_with(ms(300));
        // A store that does not report its timing.
        struct no_timing final : forwarding_store {
            using forwarding_store::forwarding_store;
            session::session_timing timing() const noexcept override { return {}; }
        };
        auto store = std::make_shared<no_timing>(inner);
        auto o = default_options();
        o.session_refresh_interval = ms(1000);  // slower than the store's 300 ms idle_timeout: it expires
        store_fixture f(o, store);
        auto c = f.connect(token("alice", session_a));
        REQUIRE(f.run_until([&] { return c->closed(); }, ms(4000)));
        CHECK(c->server_close_code() == 4001);
    }
}

TEST_CASE("liveness: refresh options are checked at start-up") {
    auto validator = std::make_shared<scripted_validator>();
    auto store = store_with(ms(400));
    auto o = default_options();
    o.session_refresh_interval = ms(400);
    CHECK_THROWS_WITH_AS(s::gateway(o, validator, store), doctest::Contains("shorter than the session store's idle_timeout"),
                         std::invalid_argument);
    o.session_refresh_interval = ms(-1);
    CHECK_THROWS_AS(s::gateway(o, validator, store), std::invalid_argument);
    o.session_refresh_interval = ms(399);
    CHECK_NOTHROW(s::gateway(o, validator, store));
}

TEST_CASE("token expiry: the validator's leeway applies after the upgrade too (one rule in both places)") {
    // Issue 13 item 4: a token expired inside the leeway was accepted at the
    // upgrade and then closed at once with 4001.
    const char* secret = "leeway-test-secret-0123456789abcdef";
    auth::key_ptr key;
    auth::key_set keys;
    REQUIRE_FALSE(auth::make_hmac_key(secret, "", {}, key));
    REQUIRE_FALSE(keys.add(key));
    auth::jwt_options jo;
    jo.leeway = std::chrono::seconds(4);
    auto validator = std::make_shared<auth::jwt_validator>(jo, std::move(keys));
    auth::signing_key_ptr signing;
    REQUIRE_FALSE(auth::make_hmac_signing_key(secret, "", signing));
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    std::string jwt;
    REQUIRE_FALSE(auth::sign_jwt({{"sub", "alice"}, {"session_key", session_a}, {"iat", now - 60}, {"exp", now - 1}},
                                 *signing, auth::jwt_algorithm::hs256, jwt));

    asio::io_context io;
    s::gateway gw(default_options(), validator, std::make_shared<session::memory_session_store>());
    add_standard_endpoints(gw, std::make_shared<held_calls>());
    s::memory_transport transport(io, gw.transport_side());
    s::memory_upgrade u;
    u.headers.push_back({"Authorization", "Bearer " + jwt});
    auto c = transport.connect(std::move(u));
    const auto run_until = [&](const std::function<bool()>& done, ms timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            if (io.stopped()) io.restart();
            io.run_one_for(ms(5));
        }
        return done();
    };
    REQUIRE(run_until([&] { return harness::manifest_of(*c).has_value() || c->closed(); }, ms(3000)));
    REQUIRE(c->status() == 101);
    const auto opened = std::chrono::steady_clock::now();
    // Expired 1 s ago (whole seconds) with 4 s of leeway: 2 to 3 s left, not closed at once.
    CHECK_FALSE(run_until([&] { return c->closed(); }, ms(1000)));
    REQUIRE(run_until([&] { return c->closed(); }, ms(5000)));
    const auto lived = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - opened);
    MESSAGE("a token expired 1 s before the upgrade, leeway 4 s: closed after " << lived.count() << " ms");
    CHECK(c->server_close_code() == 4001);
    CHECK(lived >= ms(1000));
}
