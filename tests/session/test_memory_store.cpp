// memory_session_store: the conformance kit, plus what only an in-process
// store can show (an injected clock, memory freed by expiry).
#include <gatehouse/session/memory_session_store.hpp>
#include <gatehouse/testing/session_store_conformance.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <memory>

using namespace gatehouse::session;
using namespace std::chrono_literals;
namespace kit = gatehouse::testing::conformance;

struct memory_store_factory {
    std::shared_ptr<session_store> make(const session_store_options& options) {
        memory_session_store::options o;
        static_cast<session_store_options&>(o) = options;
        return std::make_shared<memory_session_store>(o);
    }
};
TYPE_TO_STRING(memory_store_factory);
GATEHOUSE_SESSION_STORE_CONFORMANCE(memory_store_factory);

namespace {

struct fake_clock {
    std::shared_ptr<std::atomic<std::int64_t>> ms = std::make_shared<std::atomic<std::int64_t>>(1'700'000'000'000);
    time_point now() const { return time_point(std::chrono::milliseconds(ms->load())); }
    void advance(std::chrono::milliseconds d) const { ms->fetch_add(d.count()); }
};

memory_session_store::options fake_clock_options(const fake_clock& clock) {
    memory_session_store::options o;
    o.idle_timeout = 10s;
    o.tombstone_retention = 5s;
    o.max_lifetime = 1h;
    o.clock = [clock] { return clock.now(); };
    return o;
}

session_record record_for(const std::string& account) {
    session_record r;
    r.account_id = account;
    return r;
}

}  // namespace

TEST_CASE("memory store: completions run inline, before the call returns") {
    memory_session_store store;
    bool called = false;
    store.create(record_for("a"), [&](std::error_code ec, session_record) {
        CHECK_FALSE(ec);
        called = true;
    });
    CHECK(called);
}

TEST_CASE("memory store: a completion may call the store again (no lock held)") {
    memory_session_store store;
    int depth = 0;
    store.create(record_for("a"), [&](std::error_code, session_record r) {
        store.load(r.session_id, [&](std::error_code ec, session_record loaded) {
            CHECK_FALSE(ec);
            store.revoke(loaded.session_id, [&](std::error_code ec2) {
                CHECK_FALSE(ec2);
                depth = 3;
            });
        });
    });
    CHECK(depth == 3);
}

TEST_CASE("memory store: expiry follows the injected clock to the millisecond") {
    fake_clock clock;
    memory_session_store store(fake_clock_options(clock));
    auto created = kit::create(store, record_for("a"));
    REQUIRE_FALSE(created.ec);
    const auto id = created.value.session_id;
    CHECK(created.value.created_at == clock.now());

    clock.advance(10s - 1ms);
    CHECK_FALSE(kit::load(store, id).ec);
    REQUIRE_FALSE(kit::touch(store, id));
    clock.advance(10s - 1ms);
    CHECK_FALSE(kit::load(store, id).ec);
    clock.advance(1ms);
    CHECK(kit::load(store, id).ec == session_errc::expired);
    CHECK(kit::touch(store, id) == session_errc::expired);  // touching cannot revive it
    clock.advance(5s);
    CHECK(kit::load(store, id).ec == session_errc::not_found);
}

TEST_CASE("memory store: touch cannot extend a session past its max lifetime") {
    fake_clock clock;
    auto options = fake_clock_options(clock);
    options.max_lifetime = 25s;
    memory_session_store store(options);
    auto created = kit::create(store, record_for("a"));
    const auto id = created.value.session_id;
    for (int i = 0; i < 4; ++i) {
        clock.advance(6s);
        CHECK_FALSE(kit::touch(store, id));
    }
    clock.advance(1s);
    CHECK(kit::touch(store, id) == session_errc::expired);
    CHECK(kit::load(store, id).ec == session_errc::expired);
}

TEST_CASE("memory store: memory is bounded by what is live, with or without sweep()") {
    fake_clock clock;
    memory_session_store store(fake_clock_options(clock));
    for (int i = 0; i < 2000; ++i) REQUIRE_FALSE(kit::create(store, record_for("a" + std::to_string(i % 10))).ec);
    CHECK(store.size() == 2000);

    SUBCASE("sweep frees everything past expiry and retention") {
        clock.advance(10s + 5s - 1ms);
        CHECK(store.sweep() == 0);
        clock.advance(1ms);
        CHECK(store.sweep() == 2000);
        CHECK(store.size() == 0);
        CHECK(kit::list_account(store, "a1").value.empty());
    }

    SUBCASE("creating new sessions frees the expired ones in passing") {
        clock.advance(16s);
        // Steady state: as many creations as expirations. Each create frees a
        // few due entries, so the old generation is gone after a while.
        for (int round = 0; round < 5; ++round) {
            for (int i = 0; i < 2000; ++i) REQUIRE_FALSE(kit::create(store, record_for("b")).ec);
            CHECK(store.size() <= 4000);
            clock.advance(16s);
        }
        CHECK(store.size() <= 4000);
    }

    SUBCASE("touched sessions survive a sweep") {
        auto keep = kit::create(store, record_for("keeper"));
        clock.advance(9s);
        REQUIRE_FALSE(kit::touch(store, keep.value.session_id));
        clock.advance(9s);
        store.sweep();
        CHECK(store.size() == 1);
        CHECK_FALSE(kit::load(store, keep.value.session_id).ec);
        CHECK(kit::list_account(store, "keeper").value.size() == 1);
    }
}

TEST_CASE("memory store: tokens are freed after their window") {
    fake_clock clock;
    memory_session_store store(fake_clock_options(clock));
    auto created = kit::create(store, record_for("a"));
    auto token = kit::issue(store, created.value.session_id, 30s);
    REQUIRE_FALSE(token.ec);
    clock.advance(20s);  // past idle, held by the token
    CHECK_FALSE(kit::load(store, created.value.session_id).ec);
    clock.advance(10s);
    CHECK(kit::consume(store, token.value.token).ec == session_errc::token_invalid);
    CHECK(kit::load(store, created.value.session_id).ec == session_errc::expired);
    clock.advance(5s);
    CHECK(store.sweep() == 2);  // the session and the token
    CHECK(store.size() == 0);
}

TEST_CASE("memory store: an id can be reused once its tombstone is gone") {
    fake_clock clock;
    memory_session_store store(fake_clock_options(clock));
    auto r = record_for("a");
    r.session_id = random_session_id();
    REQUIRE_FALSE(kit::create(store, r).ec);
    REQUIRE_FALSE(kit::revoke(store, r.session_id));
    CHECK(kit::create(store, r).ec == session_errc::already_exists);
    clock.advance(5s);
    CHECK_FALSE(kit::create(store, r).ec);
    CHECK_FALSE(kit::load(store, r.session_id).ec);
}
