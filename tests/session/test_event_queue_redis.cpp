// redis_session_store as an event_queue_store, against a real redis-server:
// the conformance kit, the documented key schema, values of the wrong type
// under its keys, and Redis dying and coming back.
#include "redis_fixture.hpp"

#include <gatehouse/testing/event_queue_conformance.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

using namespace gatehouse;
using namespace gatehouse::session;
using namespace std::chrono_literals;
namespace kit = gatehouse::testing::queue_conformance;
using adapters::redis::redis_session_store;
using steady = std::chrono::steady_clock;

struct redis_queue_factory {
    test::io_runner io;
    std::shared_ptr<event_queue_store> make() {
        return std::make_shared<redis_session_store>(io.executor(), test::redis_options(test::shared_redis().port()));
    }
};
TYPE_TO_STRING(redis_queue_factory);
GATEHOUSE_EVENT_QUEUE_STORE_CONFORMANCE(redis_queue_factory);

namespace {

std::string without_dashes(std::string id) {
    id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
    return id;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A store on the shared Redis, a fresh session id and its two queue keys.
struct queue_fixture {
    test::redis_server& server = test::shared_redis();
    test::io_runner io;
    gatehouse::adapters::redis::redis_session_store_options options = test::redis_options(server.port());
    redis_session_store store{io.executor(), options};
    std::string id = random_session_id();
    std::string q = options.key_prefix + "q:" + without_dashes(id);
    std::string qm = options.key_prefix + "qm:" + without_dashes(id);
};

}  // namespace

TEST_CASE_FIXTURE(queue_fixture, "redis event queue: the documented key schema") {
    event_queue_limits limits;
    limits.retention = 60s;

    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    REQUIRE(kit::park(store, id, "node-a", {"first", std::string("a|\0b", 4)}, limits).value.queued);
    CHECK(server.command({"TYPE", q}) == "list");
    CHECK(server.command({"TYPE", qm}) == "hash");
    CHECK(server.command({"LLEN", q}) == "2");
    const auto entry = server.command({"LINDEX", q, "0"});
    const auto bar = entry.find('|');
    REQUIRE(bar != std::string::npos);
    CHECK(all_digits(entry.substr(0, bar)));
    // Stamped by Redis's clock: the same machine's, here.
    CHECK(std::stoll(entry.substr(0, bar)) >= before - 1000);
    CHECK(std::stoll(entry.substr(0, bar)) <= before + 10000);
    CHECK(entry.substr(bar + 1) == "first");
    const auto second = server.command({"LINDEX", q, "1"});
    CHECK(second.substr(second.find('|') + 1) == std::string("a|\0b", 4));
    CHECK(server.command({"HGET", qm, "h"}).empty());
    CHECK(server.command({"HGET", qm, "b"}) == "9");
    const auto meta_ttl = std::stoll(server.command({"PTTL", qm}));
    CHECK(meta_ttl > 50000);
    CHECK(meta_ttl <= 60000);
    CHECK(std::stoll(server.command({"PTTL", q})) > 50000);

    // append keeps the expiry: the list gets what the hash has left.
    server.command({"PEXPIRE", qm, "30000"});
    REQUIRE(kit::append(store, id, "third", limits).value.queued);
    CHECK(std::stoll(server.command({"PTTL", qm})) <= 30000);
    CHECK(std::stoll(server.command({"PTTL", q})) <= 30000);
    CHECK(server.command({"HGET", qm, "b"}) == "14");

    // take empties the list and records the holder, for the retention.
    CHECK(kit::take(store, id, "node-b", limits).value.events.size() == 3);
    CHECK(server.command({"EXISTS", q}) == "0");
    CHECK(server.command({"HGET", qm, "h"}) == "node-b");
    CHECK(server.command({"HGET", qm, "b"}) == "0");
    CHECK(std::stoll(server.command({"PTTL", qm})) > 50000);

    // discard deletes both.
    REQUIRE(kit::park(store, id, "node-b", {"x"}, limits).value.queued);
    CHECK_FALSE(kit::discard(store, id));
    CHECK(server.command({"EXISTS", q}) == "0");
    CHECK(server.command({"EXISTS", qm}) == "0");
}

TEST_CASE_FIXTURE(queue_fixture, "redis event queue: park sends only what can stay") {
    event_queue_limits limits;
    limits.max_events = 5;
    std::vector<std::string> many;
    for (int i = 0; i < 20000; ++i) many.push_back(std::to_string(i));
    many.insert(many.begin() + 19998, std::string(limits.max_bytes + 1, 'x'));
    auto parked = kit::park(store, id, "n", many, limits);
    REQUIRE_FALSE(parked.ec);
    CHECK(parked.value.evicted == 19996);
    CHECK(server.command({"LLEN", q}) == "5");
    CHECK(kit::take(store, id, "n", limits).value.events ==
          kit::events{"19995", "19996", "19997", "19998", "19999"});
}

TEST_CASE("redis event queue: scripts reloaded after Redis forgot them, batch included") {
    auto& server = test::shared_redis();
    test::io_runner io;
    redis_session_store store(io.executor(), test::redis_options(server.port()));
    const auto id = random_session_id();
    REQUIRE(kit::park(store, id, "n", {"a"}).value.queued);
    for (int round = 0; round < 2; ++round) {
        REQUIRE(server.command({"SCRIPT", "FLUSH"}) == "OK");
        auto parked = kit::park(store, id, "n", {"b", std::string("\0c", 2)});
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.queued);
        REQUIRE(server.command({"SCRIPT", "FLUSH"}) == "OK");
        CHECK(kit::append(store, id, "d").value.queued);
        REQUIRE(server.command({"SCRIPT", "FLUSH"}) == "OK");
        auto taken = kit::take(store, id, "n");
        REQUIRE_FALSE(taken.ec);
        if (round == 0)
            CHECK(taken.value.events == kit::events{"a", "b", std::string("\0c", 2), "d"});
        else
            CHECK(taken.value.events == kit::events{"b", std::string("\0c", 2), "d"});
    }
}

TEST_CASE_FIXTURE(queue_fixture, "redis event queue: values of the wrong type or shape under its keys") {
    REQUIRE(kit::park(store, id, "node-a", {"e"}).value.queued);

    // Consistently bad_reply (Redis answers WRONGTYPE).
    SUBCASE("a string at P q:{id}") {
        server.command({"DEL", q});
        server.command({"SET", q, "not a list"});
        CHECK(kit::park(store, id, "node-a", {"e"}).ec == session_errc::bad_reply);
        CHECK(kit::append(store, id, "e").ec == session_errc::bad_reply);
        CHECK(kit::take(store, id, "node-a").ec == session_errc::bad_reply);
        CHECK(server.command({"GET", q}) == "not a list");  // a failed script changed nothing
        CHECK_FALSE(kit::discard(store, id));
        CHECK(server.command({"EXISTS", q}) == "0");
    }
    SUBCASE("a string at P qm:{id}") {
        server.command({"DEL", qm});
        server.command({"SET", qm, "not a hash"});
        CHECK(kit::park(store, id, "node-a", {"e"}).ec == session_errc::bad_reply);
        CHECK(kit::append(store, id, "e").ec == session_errc::bad_reply);
        CHECK(kit::take(store, id, "node-a").ec == session_errc::bad_reply);
        CHECK(server.command({"GET", qm}) == "not a hash");
    }
    SUBCASE("a set at P qm:{id}") {
        server.command({"DEL", qm});
        server.command({"SADD", qm, "h"});
        CHECK(kit::park(store, id, "node-a", {"e"}).ec == session_errc::bad_reply);
        CHECK(kit::append(store, id, "e").ec == session_errc::bad_reply);
        CHECK(kit::take(store, id, "node-a").ec == session_errc::bad_reply);
    }
    SUBCASE("a hash without its holder field") {
        server.command({"HDEL", qm, "h"});
        CHECK(kit::append(store, id, "e").ec == session_errc::bad_reply);
    }
    SUBCASE("entries this store did not write are dropped, the others returned") {
        server.command({"RPUSH", q, "no separator"});
        server.command({"RPUSH", q, "12x|bad time"});
        server.command({"RPUSH", q, "|empty time"});
        REQUIRE(kit::append(store, id, "f").value.queued);
        auto taken = kit::take(store, id, "node-a");
        REQUIRE_FALSE(taken.ec);
        CHECK(taken.value.events == kit::events{"e", "f"});
        CHECK(taken.value.dropped == 3);
    }
}

TEST_CASE("redis event queue: Redis killed, then back") {
    test::redis_server server;
    test::io_runner io;
    auto options = test::redis_options(server.port());
    options.command_timeout = 300ms;
    options.reconnect_delay_min = 20ms;
    options.reconnect_delay_max = 200ms;
    redis_session_store store(io.executor(), options);
    const auto id = random_session_id();
    REQUIRE(kit::park(store, id, "node-a", {"e"}).value.queued);

    server.kill();
    const auto until = steady::now() + 3s;
    while (store.connected() && steady::now() < until) std::this_thread::sleep_for(5ms);
    REQUIRE_FALSE(store.connected());
    for (int i = 0; i < 3; ++i) {
        const auto start = steady::now();
        CHECK(kit::park(store, id, "node-a", {"e"}).ec == session_errc::backend_unavailable);
        CHECK(kit::append(store, id, "e").ec == session_errc::backend_unavailable);
        CHECK(kit::take(store, id, "node-a").ec == session_errc::backend_unavailable);
        CHECK(kit::discard(store, id) == session_errc::backend_unavailable);
        CHECK(steady::now() - start < 1s);
    }

    server.restart();
    std::error_code last = session_errc::backend_unavailable;
    const auto start = steady::now();
    while (last && steady::now() - start < 5s) {
        // No persistence here: the queue went with the server.
        last = kit::append(store, id, "again").ec;
        if (last == session_errc::not_found) break;
        std::this_thread::sleep_for(20ms);
    }
    CHECK(last == session_errc::not_found);
    CHECK(steady::now() - start < 3s);
    REQUIRE(kit::park(store, id, "node-a", {"new"}).value.queued);
    CHECK(kit::take(store, id, "node-b").value.events == kit::events{"new"});
}
