#include <gatehouse/client/pending_calls.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

namespace c = gatehouse::client;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

TEST_CASE("pending calls: matched by message id exactly once") {
    c::pending_calls<std::string> calls;
    const auto t0 = clock_type::time_point{} + 1h;
    REQUIRE_FALSE(calls.add(1, t0 + 30s, "one"));
    REQUIRE_FALSE(calls.add(2, t0 + 10s, "two"));
    CHECK(calls.add(1, t0 + 5s, "again") == c::client_errc::duplicate_message_id);
    CHECK(calls.size() == 2);
    CHECK(calls.next_deadline() == t0 + 10s);

    CHECK(calls.take(2) == std::optional<std::string>("two"));
    CHECK_FALSE(calls.take(2).has_value());  // a duplicate response is dropped
    CHECK_FALSE(calls.take(99).has_value());  // a foreign one too
    CHECK(calls.next_deadline() == t0 + 30s);
}

TEST_CASE("pending calls: expiry in deadline order, and cancel all") {
    c::pending_calls<std::unique_ptr<int>> calls;  // move-only payloads work
    const auto t0 = clock_type::time_point{} + 1h;
    for (int i = 0; i < 5; ++i)
        REQUIRE_FALSE(calls.add(static_cast<std::uint64_t>(i), t0 + std::chrono::seconds(10 - i), std::make_unique<int>(i)));
    auto expired = calls.take_expired(t0 + 7s);  // deadlines 6 s and 7 s
    REQUIRE(expired.size() == 2);
    CHECK(expired[0].first == 4);
    CHECK(*expired[1].second == 3);
    CHECK(calls.take_expired(t0 + 7s).empty());
    auto rest = calls.take_all();
    CHECK(rest.size() == 3);
    CHECK(calls.empty());
    CHECK_FALSE(calls.next_deadline().has_value());
}

TEST_CASE("pending calls: the limit is enforced") {
    c::pending_calls<int> calls(2);
    const auto t = clock_type::now();
    REQUIRE_FALSE(calls.add(1, t, 1));
    REQUIRE_FALSE(calls.add(2, t, 2));
    CHECK(calls.add(3, t, 3) == c::client_errc::too_many_pending_calls);
    CHECK(calls.take(1).has_value());
    CHECK_FALSE(calls.add(3, t, 3));
}

TEST_CASE("pending calls: a refused call is left with the caller") {
    c::pending_calls<std::unique_ptr<int>> calls(1);
    const auto t = clock_type::now();
    REQUIRE_FALSE(calls.add(1, t, std::make_unique<int>(1)));
    auto mine = std::make_unique<int>(2);
    CHECK(calls.add(2, t, std::move(mine)) == c::client_errc::too_many_pending_calls);
    REQUIRE(mine != nullptr);  // not moved from: the caller still completes it
    CHECK(*mine == 2);
    auto dup = std::make_unique<int>(3);
    calls.take(1);
    REQUIRE_FALSE(calls.add(5, t, std::make_unique<int>(5)));
    CHECK(calls.add(5, t, std::move(dup)) == c::client_errc::too_many_pending_calls);
    CHECK(dup != nullptr);
}
