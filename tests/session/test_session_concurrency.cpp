// Many threads creating, touching, revoking and racing for reconnection
// tokens at once. Run under ThreadSanitizer in CI (label tsan).
#include <gatehouse/session/memory_session_store.hpp>
#include <gatehouse/testing/session_store_conformance.hpp>
#if defined(GATEHOUSE_TEST_WITH_REDIS)
#include "redis_fixture.hpp"
#endif

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace gatehouse::session;
using namespace std::chrono_literals;
namespace kit = gatehouse::testing::conformance;

namespace {

// Each round: a few sessions with a token each; every thread repeatedly
// picks a session and does one of create / load / touch / update / revoke /
// issue / list, and every thread also races for every token. Checks that each token
// was won exactly once (or by nobody, when its session was revoked or
// re-issued first) and that nothing failed unexpectedly.
void hammer(session_store& store, int threads, int rounds, int sessions_per_round) {
    const auto account = kit::unique_account("hammer");
    std::atomic<int> unexpected{0};
    for (int round = 0; round < rounds; ++round) {
        std::vector<std::string> ids;
        std::vector<std::string> tokens;
        for (int i = 0; i < sessions_per_round; ++i) {
            auto created = kit::create(store, kit::sample_record(account));
            REQUIRE_FALSE(created.ec);
            ids.push_back(created.value.session_id);
            auto token = kit::issue(store, created.value.session_id, 1min);
            REQUIRE_FALSE(token.ec);
            tokens.push_back(token.value.token);
        }
        std::vector<std::atomic<int>> wins(tokens.size());
        // Set before a thread revokes a session or re-issues its token: only
        // such a token may end up won by nobody.
        std::vector<std::atomic<bool>> disturbed(tokens.size());
        std::atomic<bool> go{false};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                std::mt19937 rng(static_cast<unsigned>(round * 131 + t));
                while (!go.load()) std::this_thread::yield();
                for (std::size_t k = 0; k < tokens.size(); ++k) {
                    const auto i = (k + static_cast<std::size_t>(t)) % tokens.size();
                    auto consumed = kit::consume(store, tokens[i]);
                    if (!consumed.ec) ++wins[i];
                    else if (consumed.ec != session_errc::token_consumed && consumed.ec != session_errc::token_invalid &&
                             consumed.ec != session_errc::revoked)
                        ++unexpected;
                    const auto pick = rng() % ids.size();
                    const auto& id = ids[pick];
                    const auto op = rng() % 7;
                    if (op == 4 || op == 5) disturbed[pick] = true;
                    std::error_code ec;
                    switch (op) {
                    case 0: ec = kit::create(store, kit::sample_record(account)).ec; break;
                    case 1: ec = kit::load(store, id).ec; break;
                    case 2: ec = kit::touch(store, id); break;
                    case 3: {
                        auto r = kit::sample_record(account);
                        r.session_id = id;
                        r.node_id = "node-" + std::to_string(t);
                        ec = kit::update(store, r).ec;
                        break;
                    }
                    case 4: ec = kit::revoke(store, id); break;
                    case 5: ec = kit::issue(store, id, 1min).ec; break;
                    case 6: ec = kit::list_account(store, account).ec; break;
                    }
                    if (ec && ec != session_errc::revoked) ++unexpected;
                }
            });
        }
        go = true;
        for (auto& th : pool) th.join();
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            CHECK(wins[i].load() <= 1);
            if (!disturbed[i].load()) CHECK(wins[i].load() == 1);
        }
    }
    CHECK(unexpected.load() == 0);
    auto revoked = kit::revoke_account(store, account);
    CHECK_FALSE(revoked.ec);
    CHECK(kit::list_account(store, account).value.empty());
}

}  // namespace

TEST_CASE("concurrency: memory store under many threads") {
    memory_session_store store;
    hammer(store, 8, 20, 16);
    CHECK(store.size() > 0);
}

TEST_CASE("concurrency: exactly-once consumption with 16 racers, memory store") {
    memory_session_store store;
    for (int round = 0; round < 50; ++round) {
        auto created = kit::create(store, kit::sample_record("race"));
        auto token = kit::issue(store, created.value.session_id, 1min);
        std::atomic<int> wins{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> pool;
        for (int t = 0; t < 16; ++t)
            pool.emplace_back([&] {
                while (!go.load()) std::this_thread::yield();
                store.consume_reconnect_token(token.value.token, [&](std::error_code ec, session_record) {
                    if (!ec) ++wins;
                });
            });
        go = true;
        for (auto& th : pool) th.join();
        CHECK(wins.load() == 1);
    }
}

#if defined(GATEHOUSE_TEST_WITH_REDIS)
TEST_CASE("concurrency: redis store, two io threads, many callers") {
    gatehouse::test::io_runner io(2);
    gatehouse::adapters::redis::redis_session_store store(
        io.executor(), gatehouse::test::redis_options(gatehouse::test::shared_redis().port()));
    hammer(store, 8, 8, 16);
}
#endif
