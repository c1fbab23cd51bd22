// Conformance kit for event_queue_store implementations: doctest test cases
// that check the contract of gatehouse/session/event_queue_store.hpp against
// any store.
//
// Usage, in exactly one translation unit of a doctest test program:
//
//     #include <gatehouse/testing/event_queue_conformance.hpp>
//
//     struct my_queue_factory {
//         // A fresh, empty store. The factory object lives longer than every
//         // store it makes and may own what they need (a server, an
//         // io_context thread...).
//         std::shared_ptr<gatehouse::session::event_queue_store> make();
//     };
//     TYPE_TO_STRING(my_queue_factory);  // optional: names the test cases
//     GATEHOUSE_EVENT_QUEUE_STORE_CONFORMANCE(my_queue_factory);
//
// The age and retention cases sleep for a few hundred milliseconds of real
// time, since a store may delegate them to its backend's own clock (Redis
// TIME and TTLs). The whole kit takes a few seconds per store.
#pragma once

#include <gatehouse/session/event_queue_store.hpp>
#include <gatehouse/session/session.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse::testing {

namespace queue_conformance {

using namespace std::chrono_literals;
using session::event_queue_limits;
using session::event_queue_store;
using session::queue_status;
using session::session_errc;
using session::taken_events;

/// How long the kit waits for any completion before failing (a store that
/// never calls back must fail the test, not hang it).
inline constexpr auto completion_deadline = std::chrono::seconds(10);

template <class T>
struct outcome {
    std::error_code ec;
    T value{};
    bool completed = false;  ///< false: no completion within the deadline
};

/// Runs `start(completion)` and waits (at most completion_deadline) for the
/// completion, on whatever thread it arrives. Makes no doctest assertion:
/// usable from any thread.
template <class T, class Start>
outcome<T> try_await(Start&& start) {
    auto promise = std::make_shared<std::promise<outcome<T>>>();
    auto future = promise->get_future();
    auto called = std::make_shared<std::atomic<int>>(0);
    start([promise, called](std::error_code ec, T value) {
        if (called->fetch_add(1) == 0) promise->set_value(outcome<T>{ec, std::move(value), true});
    });
    if (future.wait_for(completion_deadline) != std::future_status::ready) return {};
    return future.get();
}

/// try_await on the test's thread: a missing completion fails the test.
template <class T, class Start>
outcome<T> await(Start&& start) {
    auto result = try_await<T>(std::forward<Start>(start));
    if (!result.completed) FAIL("event_queue_store completion not called within 10 s");
    return result;
}

inline outcome<queue_status> park(event_queue_store& s, const std::string& id, const std::string& node,
                                  std::vector<std::string> events, const event_queue_limits& limits = {}) {
    return await<queue_status>([&](auto c) { s.park(id, node, std::move(events), limits, std::move(c)); });
}
inline outcome<queue_status> append(event_queue_store& s, const std::string& id, const std::string& event,
                                    const event_queue_limits& limits = {}) {
    return await<queue_status>([&](auto c) { s.append(id, event, limits, std::move(c)); });
}
inline outcome<taken_events> take(event_queue_store& s, const std::string& id, const std::string& node,
                                  const event_queue_limits& limits = {}) {
    return await<taken_events>([&](auto c) { s.take(id, node, limits, std::move(c)); });
}
inline std::error_code discard(event_queue_store& s, const std::string& id) {
    return await<int>([&](auto complete) {
               s.discard(id, [complete](std::error_code ec) { complete(ec, 0); });
           })
        .ec;
}

using events = std::vector<std::string>;

/// Bytes no text protocol survives: NULs, the separators a store might use
/// for framing, CR LF, every byte value.
inline std::string binary_event(std::size_t size, unsigned seed) {
    std::string e(size, '\0');
    unsigned x = seed * 2654435761u + 1;
    for (std::size_t i = 0; i < size; ++i) {
        x = x * 1103515245u + 12345u;
        e[i] = static_cast<char>((x >> 16) & 0xff);
    }
    return e;
}

}  // namespace queue_conformance
}  // namespace gatehouse::testing

// doctest registers template test cases at namespace scope, where
// GATEHOUSE_EVENT_QUEUE_STORE_CONFORMANCE can name them.
// clang-format off
TEST_CASE_TEMPLATE_DEFINE("event_queue_store conformance: park, append, take, holders", Factory,
                          gatehouse_event_queue_conformance_basic) {
    using namespace gatehouse::testing::queue_conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    std::shared_ptr<event_queue_store> store = factory.make();
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto id = session::random_session_id();

    SUBCASE("park then take returns the events oldest first, and empties the queue") {
        auto parked = park(s, id, "node-a", {"one", "two", "three"});
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.queued);
        CHECK(parked.value.holder.empty());
        CHECK(parked.value.evicted == 0);
        auto taken = take(s, id, "node-b");
        REQUIRE_FALSE(taken.ec);
        CHECK(taken.value.events == events{"one", "two", "three"});
        CHECK(taken.value.dropped == 0);
        auto again = take(s, id, "node-b");
        REQUIRE_FALSE(again.ec);
        CHECK(again.value.events.empty());
        CHECK(again.value.dropped == 0);
    }

    SUBCASE("take of a session never parked returns nothing and holds it") {
        auto taken = take(s, id, "node-b");
        REQUIRE_FALSE(taken.ec);
        CHECK(taken.value.events.empty());
        auto refused = append(s, id, "late");
        REQUIRE_FALSE(refused.ec);
        CHECK_FALSE(refused.value.queued);
        CHECK(refused.value.holder == "node-b");
    }

    SUBCASE("append to a session that is not parked: not_found") {
        CHECK(append(s, id, "event").ec == session_errc::not_found);
        CHECK(append(s, session::random_session_id(), "").ec == session_errc::not_found);
    }

    SUBCASE("appends follow the parked events, in order") {
        auto parked = park(s, id, "node-a", {});
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.queued);
        for (const char* e : {"e1", "e2", "e3"}) {
            auto appended = append(s, id, e);
            REQUIRE_FALSE(appended.ec);
            CHECK(appended.value.queued);
            CHECK(appended.value.holder.empty());
            CHECK(appended.value.evicted == 0);
        }
        // A second park (the same node) keeps the queue open and adds to it.
        auto again = park(s, id, "node-a", {"e4"});
        REQUIRE_FALSE(again.ec);
        CHECK(again.value.queued);
        CHECK(take(s, id, "node-a").value.events == events{"e1", "e2", "e3", "e4"});
    }

    SUBCASE("an empty event is an event") {
        REQUIRE_FALSE(park(s, id, "node-a", {""}).ec);
        REQUIRE(append(s, id, "").value.queued);
        CHECK(take(s, id, "node-a").value.events == events{"", ""});
    }

    SUBCASE("append after take is refused with the holder") {
        REQUIRE_FALSE(park(s, id, "node-a", {"before"}).ec);
        REQUIRE(take(s, id, "node-b").value.events == events{"before"});
        auto refused = append(s, id, "after");
        REQUIRE_FALSE(refused.ec);
        CHECK_FALSE(refused.value.queued);
        CHECK(refused.value.holder == "node-b");
        CHECK(refused.value.evicted == 0);
        // Nothing was queued: the holder re-parking finds an empty queue.
        REQUIRE(park(s, id, "node-b", {}).value.queued);
        CHECK(take(s, id, "node-c").value.events.empty());
    }

    SUBCASE("park by another node while held is refused, and stores nothing") {
        REQUIRE_FALSE(park(s, id, "node-a", {"first"}).ec);
        REQUIRE_FALSE(take(s, id, "node-b").ec);
        auto refused = park(s, id, "node-a", {"stale-1", "stale-2"});
        REQUIRE_FALSE(refused.ec);
        CHECK_FALSE(refused.value.queued);
        CHECK(refused.value.holder == "node-b");
        CHECK(refused.value.evicted == 0);
        // Still held by node-b.
        auto appended = append(s, id, "x");
        CHECK_FALSE(appended.value.queued);
        CHECK(appended.value.holder == "node-b");
        REQUIRE(park(s, id, "node-b", {}).value.queued);
        CHECK(take(s, id, "node-b").value.events.empty());
    }

    SUBCASE("park by the holder itself reopens the queue") {
        REQUIRE_FALSE(take(s, id, "node-b").ec);
        auto reparked = park(s, id, "node-b", {"from-b"});
        REQUIRE_FALSE(reparked.ec);
        CHECK(reparked.value.queued);
        CHECK(reparked.value.holder.empty());
        auto appended = append(s, id, "pushed");
        CHECK(appended.value.queued);
        // Anyone may park it now (no holder).
        CHECK(park(s, id, "node-a", {"from-a"}).value.queued);
        CHECK(take(s, id, "node-c").value.events == events{"from-b", "pushed", "from-a"});
        auto refused = append(s, id, "later");
        CHECK_FALSE(refused.value.queued);
        CHECK(refused.value.holder == "node-c");
    }

    SUBCASE("take by node B after park by node A: appends are refused with holder B") {
        REQUIRE(park(s, id, "A", {"a1"}).value.queued);
        REQUIRE(append(s, id, "a2").value.queued);
        CHECK(take(s, id, "B").value.events == events{"a1", "a2"});
        auto refused = append(s, id, "a3");
        REQUIRE_FALSE(refused.ec);
        CHECK_FALSE(refused.value.queued);
        CHECK(refused.value.holder == "B");
        auto park_refused = park(s, id, "A", {"a4"});
        CHECK_FALSE(park_refused.value.queued);
        CHECK(park_refused.value.holder == "B");
        // A second take moves the hold (the client reconnected elsewhere).
        CHECK(take(s, id, "C").value.events.empty());
        CHECK(append(s, id, "a5").value.holder == "C");
    }

    SUBCASE("discard drops the queue and the holder record") {
        REQUIRE_FALSE(park(s, id, "node-a", {"gone"}).ec);
        CHECK_FALSE(discard(s, id));
        CHECK(append(s, id, "x").ec == session_errc::not_found);
        CHECK(take(s, id, "node-b").value.events.empty());
        // The hold node-b just took is dropped too.
        CHECK_FALSE(discard(s, id));
        CHECK(park(s, id, "node-a", {"new"}).value.queued);
        CHECK(take(s, id, "node-a").value.events == events{"new"});
        // Nothing there is not an error.
        CHECK_FALSE(discard(s, session::random_session_id()));
        CHECK_FALSE(discard(s, session::random_session_id()));
    }
}

TEST_CASE_TEMPLATE_DEFINE("event_queue_store conformance: size and count limits", Factory,
                          gatehouse_event_queue_conformance_limits) {
    using namespace gatehouse::testing::queue_conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    std::shared_ptr<event_queue_store> store = factory.make();
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto id = session::random_session_id();

    SUBCASE("max_events evicts the oldest") {
        event_queue_limits limits;
        limits.max_events = 3;
        auto parked = park(s, id, "n", {"1", "2", "3", "4", "5"}, limits);
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.queued);
        CHECK(parked.value.evicted == 2);
        auto appended = append(s, id, "6", limits);
        REQUIRE_FALSE(appended.ec);
        CHECK(appended.value.queued);
        CHECK(appended.value.evicted == 1);
        CHECK(park(s, id, "n", {"7"}, limits).value.evicted == 1);
        auto taken = take(s, id, "n", limits);
        CHECK(taken.value.events == events{"5", "6", "7"});
        CHECK(taken.value.dropped == 0);
    }

    SUBCASE("max_bytes evicts the oldest") {
        event_queue_limits limits;
        limits.max_bytes = 10;
        auto parked = park(s, id, "n", {"aaaa", "bbbb", "cccc"}, limits);
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.evicted == 1);
        // 8 bytes queued: 2 more fit, 3 do not.
        CHECK(append(s, id, "dd", limits).value.evicted == 0);
        CHECK(append(s, id, "eee", limits).value.evicted == 1);
        CHECK(take(s, id, "n", limits).value.events == events{"cccc", "dd", "eee"});
        // One event of exactly max_bytes fits, alone.
        REQUIRE(park(s, id, "n", {"x", "y"}, limits).value.queued);
        auto full = append(s, id, std::string(10, 'z'), limits);
        CHECK(full.value.queued);
        CHECK(full.value.evicted == 2);
        CHECK(take(s, id, "n", limits).value.events == events{std::string(10, 'z')});
    }

    SUBCASE("an event larger than max_bytes: event_too_large on append, evicted on park") {
        event_queue_limits limits;
        limits.max_bytes = 10;
        REQUIRE_FALSE(park(s, id, "n", {"keep"}, limits).ec);
        CHECK(append(s, id, std::string(11, 'x'), limits).ec == session_errc::event_too_large);
        auto parked = park(s, id, "n", {"small", std::string(11, 'x'), "tail"}, limits);
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.queued);
        // "keep" + "small" + "tail" = 13 bytes: "keep" goes too.
        CHECK(parked.value.evicted == 2);
        CHECK(take(s, id, "n", limits).value.events == events{"small", "tail"});
        // event_too_large is checked before anything else is looked at.
        CHECK(append(s, session::random_session_id(), std::string(11, 'x'), limits).ec ==
              session_errc::event_too_large);
    }

    SUBCASE("limits apply per call: a later call's smaller limits evict") {
        REQUIRE_FALSE(park(s, id, "n", {"1", "2", "3", "4"}).ec);
        event_queue_limits tight;
        tight.max_events = 2;
        auto appended = append(s, id, "5", tight);
        CHECK(appended.value.queued);
        CHECK(appended.value.evicted == 3);
        CHECK(take(s, id, "n").value.events == events{"4", "5"});
    }
}

TEST_CASE_TEMPLATE_DEFINE("event_queue_store conformance: age and retention", Factory,
                          gatehouse_event_queue_conformance_expiry) {
    using namespace gatehouse::testing::queue_conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    std::shared_ptr<event_queue_store> store = factory.make();
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto id = session::random_session_id();

    SUBCASE("events older than max_age are not returned, and counted") {
        event_queue_limits limits;
        limits.max_age = 250ms;
        REQUIRE_FALSE(park(s, id, "n", {"old-1", "old-2"}, limits).ec);
        std::this_thread::sleep_for(400ms);
        auto taken = take(s, id, "n", limits);
        REQUIRE_FALSE(taken.ec);
        CHECK(taken.value.events.empty());
        CHECK(taken.value.dropped == 2);
    }

    SUBCASE("old events are dropped (evicted or at take), newer ones kept") {
        event_queue_limits limits;
        limits.max_age = 250ms;
        REQUIRE_FALSE(park(s, id, "n", {"old-1", "old-2"}, limits).ec);
        std::this_thread::sleep_for(400ms);
        auto appended = append(s, id, "new", limits);
        REQUIRE(appended.value.queued);
        auto taken = take(s, id, "n", limits);
        CHECK(taken.value.events == events{"new"});
        CHECK(appended.value.evicted + taken.value.dropped == 2);
    }

    SUBCASE("a parked queue expires after its retention; append does not extend it") {
        event_queue_limits limits;
        limits.retention = 500ms;
        REQUIRE_FALSE(park(s, id, "n", {"e1"}, limits).ec);
        std::this_thread::sleep_for(250ms);
        REQUIRE(append(s, id, "e2", limits).value.queued);
        std::this_thread::sleep_for(400ms);  // 650 ms after the park
        CHECK(append(s, id, "e3", limits).ec == session_errc::not_found);
        auto taken = take(s, id, "n", limits);
        REQUIRE_FALSE(taken.ec);
        CHECK(taken.value.events.empty());
        CHECK(taken.value.dropped == 0);
    }

    SUBCASE("a park restarts the retention") {
        event_queue_limits limits;
        limits.retention = 500ms;
        REQUIRE_FALSE(park(s, id, "n", {"e1"}, limits).ec);
        std::this_thread::sleep_for(300ms);
        REQUIRE(park(s, id, "n", {"e2"}, limits).value.queued);
        std::this_thread::sleep_for(300ms);  // 600 ms after the first park
        CHECK(append(s, id, "e3", limits).value.queued);
        CHECK(take(s, id, "n", limits).value.events == events{"e1", "e2", "e3"});
    }

    SUBCASE("the holder record expires after its retention") {
        event_queue_limits limits;
        limits.retention = 300ms;
        REQUIRE_FALSE(take(s, id, "node-b", limits).ec);
        CHECK(append(s, id, "x", limits).value.holder == "node-b");
        std::this_thread::sleep_for(450ms);
        CHECK(append(s, id, "x", limits).ec == session_errc::not_found);
        auto parked = park(s, id, "node-a", {"y"}, limits);
        CHECK(parked.value.queued);
        CHECK(parked.value.holder.empty());
    }
}

TEST_CASE_TEMPLATE_DEFINE("event_queue_store conformance: bad input and payloads", Factory,
                          gatehouse_event_queue_conformance_input) {
    using namespace gatehouse::testing::queue_conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    std::shared_ptr<event_queue_store> store = factory.make();
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto id = session::random_session_id();

    SUBCASE("invalid session ids") {
        const std::vector<std::string> bad_ids{"", "x", "0123ABCD-0000-4000-8000-000000000000",
                                               "{00000000-0000-0000-0000-000000000000}", id + "0"};
        for (const auto& bad : bad_ids) {
            CHECK(park(s, bad, "n", {"e"}).ec == session_errc::invalid_session_id);
            CHECK(append(s, bad, "e").ec == session_errc::invalid_session_id);
            CHECK(take(s, bad, "n").ec == session_errc::invalid_session_id);
            CHECK(discard(s, bad) == session_errc::invalid_session_id);
        }
    }

    SUBCASE("invalid node ids; 64 bytes is the longest") {
        for (const auto& bad : std::vector<std::string>{std::string(), std::string(65, 'n')}) {
            CHECK(park(s, id, bad, {"e"}).ec == session_errc::invalid_node_id);
            CHECK(take(s, id, bad).ec == session_errc::invalid_node_id);
        }
        CHECK(append(s, id, "e").ec == session_errc::not_found);  // nothing was parked
        const std::string longest(64, 'n');
        REQUIRE(park(s, id, longest, {"e"}).value.queued);
        REQUIRE_FALSE(take(s, id, longest).ec);
        CHECK(append(s, id, "e").value.holder == longest);
    }

    SUBCASE("invalid limits") {
        std::vector<event_queue_limits> bad(6);
        bad[0].max_events = 0;
        bad[1].max_bytes = 0;
        bad[2].max_age = 0ms;
        bad[3].retention = 0ms;
        bad[4].max_age = -5ms;
        bad[5].retention = -1ms;
        REQUIRE_FALSE(park(s, id, "n", {"kept"}).ec);
        for (const auto& limits : bad) {
            CHECK(park(s, id, "n", {"e"}, limits).ec == session_errc::invalid_queue_limits);
            CHECK(append(s, id, "e", limits).ec == session_errc::invalid_queue_limits);
            CHECK(take(s, id, "n", limits).ec == session_errc::invalid_queue_limits);
        }
        // Nothing rejected changed the queue.
        CHECK(take(s, id, "n").value.events == events{"kept"});
    }

    SUBCASE("the largest limits mean no limit") {
        event_queue_limits unlimited;
        unlimited.max_events = std::numeric_limits<std::size_t>::max();
        unlimited.max_bytes = std::numeric_limits<std::size_t>::max();
        unlimited.max_age = std::chrono::milliseconds::max();
        unlimited.retention = std::chrono::milliseconds::max();
        auto parked = park(s, id, "n", {"a", "b"}, unlimited);
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.queued);
        CHECK(parked.value.evicted == 0);
        CHECK(append(s, id, "c", unlimited).value.evicted == 0);
        auto taken = take(s, id, "n", unlimited);
        REQUIRE_FALSE(taken.ec);
        CHECK(taken.value.events == events{"a", "b", "c"});
        CHECK(taken.value.dropped == 0);
        CHECK(append(s, id, "d", unlimited).value.holder == "n");
    }

    SUBCASE("binary payloads round-trip exactly") {
        const events sent{std::string("a\0b", 3), "|", "||x|y|", "123|456", "\r\n$3\r\nfoo\r\n",
                          std::string(1, '\0'), binary_event(64 * 1024, 1), binary_event(1000, 2)};
        auto parked = park(s, id, "node|1", sent);
        REQUIRE_FALSE(parked.ec);
        CHECK(parked.value.evicted == 0);
        const auto big = binary_event(64 * 1024, 3);
        REQUIRE(append(s, id, big).value.queued);
        REQUIRE(append(s, id, std::string("\0|\0", 3)).value.queued);
        auto taken = take(s, id, "node|2");
        REQUIRE_FALSE(taken.ec);
        auto expected = sent;
        expected.push_back(big);
        expected.push_back(std::string("\0|\0", 3));
        REQUIRE(taken.value.events.size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            CAPTURE(i);
            CHECK(taken.value.events[i] == expected[i]);
        }
        CHECK(taken.value.dropped == 0);
        CHECK(append(s, id, "x").value.holder == "node|2");
    }

    SUBCASE("sessions are independent") {
        constexpr int count = 20;
        std::vector<std::string> ids;
        for (int i = 0; i < count; ++i) ids.push_back(session::random_session_id());
        for (int i = 0; i < count; ++i)
            REQUIRE(park(s, ids[i], "node-" + std::to_string(i % 3), {"p" + std::to_string(i)}).value.queued);
        for (int i = 0; i < count; ++i) REQUIRE(append(s, ids[i], "a" + std::to_string(i)).value.queued);
        // Taking, discarding or holding some leaves the others alone.
        for (int i = 0; i < count; i += 2)
            CHECK(take(s, ids[i], "taker").value.events == events{"p" + std::to_string(i), "a" + std::to_string(i)});
        CHECK_FALSE(discard(s, ids[1]));
        for (int i = 0; i < count; ++i) {
            auto appended = append(s, ids[i], "late");
            if (i == 1) {
                CHECK(appended.ec == session_errc::not_found);
            } else if (i % 2 == 0) {
                CHECK(appended.value.holder == "taker");
            } else {
                CHECK(appended.value.queued);
            }
        }
        for (int i = 3; i < count; i += 2)
            CHECK(take(s, ids[i], "other").value.events ==
                  events{"p" + std::to_string(i), "a" + std::to_string(i), "late"});
    }
}

TEST_CASE_TEMPLATE_DEFINE("event_queue_store conformance: appends racing takes", Factory,
                          gatehouse_event_queue_conformance_concurrency) {
    using namespace gatehouse::testing::queue_conformance;
    namespace session = ::gatehouse::session;
    Factory factory;
    std::shared_ptr<event_queue_store> store = factory.make();
    REQUIRE(store != nullptr);
    auto& s = *store;
    const auto id = session::random_session_id();

    // Several threads append to one parked session while it is taken (by
    // "holder"), parked again by its holder, and finally taken once more:
    // every event is either refused or in exactly one take, in its thread's
    // order; none is lost or duplicated.
    constexpr int threads = 4;
    constexpr int per_thread = 150;
    event_queue_limits limits;
    limits.max_events = threads * per_thread;
    limits.max_bytes = 1024 * 1024;
    REQUIRE(park(s, id, "parker", {}, limits).value.queued);

    struct result {
        std::string event;
        bool queued = false;
        std::string holder;
        std::size_t evicted = 0;
        bool failed = false;
    };
    std::vector<std::vector<result>> results(threads);
    std::atomic<int> started{0};
    std::vector<std::thread> appenders;
    for (int t = 0; t < threads; ++t) {
        appenders.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                result r;
                r.event = std::to_string(t) + ":" + std::to_string(i);
                auto out = try_await<queue_status>([&](auto c) { s.append(id, r.event, limits, std::move(c)); });
                r.failed = !out.completed || bool(out.ec);
                r.queued = out.value.queued;
                r.holder = out.value.holder;
                r.evicted = out.value.evicted;
                results[t].push_back(std::move(r));
                started.fetch_add(1);
                // Paced, so that the take and the reopening fall amid the
                // appends even with a store that completes inline.
                if (i % 8 == 7) std::this_thread::sleep_for(1ms);
            }
        });
    }
    // Take while the appends run, then reopen a little later.
    const auto wait_for = [&](int n) {
        const auto until = std::chrono::steady_clock::now() + completion_deadline;
        while (started.load() < n && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    };
    wait_for(threads * per_thread / 4);
    auto first = take(s, id, "holder", limits);
    wait_for(threads * per_thread / 2);
    auto reopened = park(s, id, "holder", {}, limits);
    for (auto& a : appenders) a.join();
    auto second = take(s, id, "final", limits);
    REQUIRE_FALSE(first.ec);
    REQUIRE_FALSE(reopened.ec);
    CHECK(reopened.value.queued);
    REQUIRE_FALSE(second.ec);

    std::size_t queued = 0, refused = 0, failed = 0, evicted = 0;
    std::set<std::string> accepted;
    for (const auto& per : results) {
        for (const auto& r : per) {
            if (r.failed) ++failed;
            else if (r.queued) {
                ++queued;
                accepted.insert(r.event);
            } else {
                ++refused;
                CHECK(r.holder == "holder");
            }
            evicted += r.evicted;
        }
    }
    CHECK(failed == 0);
    CHECK(evicted == 0);
    CHECK(queued + refused == std::size_t(threads * per_thread));
    CHECK(first.value.events.size() + second.value.events.size() == queued);
    MESSAGE("queued before the take " << first.value.events.size() << ", refused " << refused
                                      << ", queued after the reopening " << second.value.events.size());

    // Each taken event was accepted, appears once, and each thread's events
    // come in the order they were appended.
    std::set<std::string> seen;
    std::size_t duplicates = 0, unknown = 0, out_of_order = 0;
    for (const auto* taken : {&first.value.events, &second.value.events}) {
        std::map<std::string, int> last_of_thread;
        for (const auto& e : *taken) {
            if (!seen.insert(e).second) ++duplicates;
            if (accepted.count(e) == 0) ++unknown;
            const auto colon = e.find(':');
            if (colon == std::string::npos) {
                ++unknown;
                continue;
            }
            const int n = std::stoi(e.substr(colon + 1));
            auto it = last_of_thread.find(e.substr(0, colon));
            if (it != last_of_thread.end() && it->second >= n) ++out_of_order;
            last_of_thread[e.substr(0, colon)] = n;
        }
    }
    CHECK(duplicates == 0);
    CHECK(unknown == 0);
    CHECK(out_of_order == 0);
    CHECK(seen == accepted);
    // Refusals happen only while "holder" held the session: every refused
    // event of a thread lies between its accepted ones of each phase.
    for (const auto& per : results) {
        bool refused_seen = false, accepted_after_refusal = false;
        for (const auto& r : per) {
            if (!r.queued) refused_seen = true;
            else if (refused_seen) accepted_after_refusal = true;
            if (accepted_after_refusal && !r.queued) CHECK_MESSAGE(false, "refused after the reopening: " << r.event);
        }
    }
}
// clang-format on

/// Runs every conformance case against the store `Factory` makes.
#define GATEHOUSE_EVENT_QUEUE_STORE_CONFORMANCE(Factory)                                    \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_event_queue_conformance_basic, Factory);            \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_event_queue_conformance_limits, Factory);           \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_event_queue_conformance_expiry, Factory);           \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_event_queue_conformance_input, Factory);            \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_event_queue_conformance_concurrency, Factory)
