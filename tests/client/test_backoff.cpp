#include <gatehouse/client/backoff.hpp>

#include <doctest/doctest.h>

namespace c = gatehouse::client;
using namespace std::chrono_literals;

TEST_CASE("backoff: bounds grow to the maximum, jitter stays inside them") {
    c::reconnect_backoff b({100ms, 1000ms, 2.0, 1.0, 0}, 42);
    const std::chrono::milliseconds bounds[] = {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms, 1000ms};
    for (auto bound : bounds) {
        const auto d = b.next();
        CHECK(d >= 0ms);
        CHECK(d <= bound);
    }
    CHECK(b.attempts() == 7);
    b.reset();
    CHECK(b.attempts() == 0);
    CHECK(b.next() <= 100ms);
}

TEST_CASE("backoff: without jitter the delays are exact") {
    c::reconnect_backoff b({250ms, 30000ms, 2.0, 0.0, 3}, 1);
    CHECK(b.can_retry());
    CHECK(b.next() == 250ms);
    CHECK(b.next() == 500ms);
    CHECK(b.next() == 1000ms);
    CHECK_FALSE(b.can_retry());
}

TEST_CASE("backoff: full jitter spreads clients that failed together") {
    int below_half = 0;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        c::reconnect_backoff b({1000ms, 1000ms, 2.0, 1.0, 0}, seed);
        below_half += b.next() < 500ms ? 1 : 0;
    }
    CHECK(below_half > 60);  // about half of 200, far from all or none
    CHECK(below_half < 140);
}

TEST_CASE("backoff: invalid options are refused") {
    CHECK_THROWS_AS(c::reconnect_backoff({0ms, 1000ms, 2.0, 1.0, 0}), std::invalid_argument);
    CHECK_THROWS_AS(c::reconnect_backoff({100ms, 50ms, 2.0, 1.0, 0}), std::invalid_argument);
    CHECK_THROWS_AS(c::reconnect_backoff({100ms, 1000ms, 0.5, 1.0, 0}), std::invalid_argument);
    CHECK_THROWS_AS(c::reconnect_backoff({100ms, 1000ms, 2.0, 1.5, 0}), std::invalid_argument);
}
