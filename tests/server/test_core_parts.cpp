// The gateway's small parts on their own, without a gateway: the rate
// limits (gatehouse/server/detail/rate_limits.hpp) and the per-session
// event queue (gatehouse/server/detail/event_queue.hpp).
#include <gatehouse/server/detail/event_queue.hpp>
#include <gatehouse/server/detail/rate_limits.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace d = gatehouse::server::detail;
using std::chrono::milliseconds;

TEST_CASE("token bucket: starts full, refills at its rate, never beyond its capacity") {
    d::token_bucket b;
    const auto t0 = d::steady::now();
    for (int i = 0; i < 5; ++i) CHECK(b.take(5, 10, t0));
    CHECK_FALSE(b.take(5, 10, t0));
    // 10 tokens/s: one more after 100 ms, not before.
    CHECK_FALSE(b.take(5, 10, t0 + milliseconds(50)));
    CHECK(b.take(5, 10, t0 + milliseconds(100)));
    CHECK_FALSE(b.take(5, 10, t0 + milliseconds(100)));
    // An hour later: full, and no more than full.
    const auto later = t0 + std::chrono::hours(1);
    for (int i = 0; i < 5; ++i) CHECK(b.take(5, 10, later));
    CHECK_FALSE(b.take(5, 10, later));
}

TEST_CASE("token bucket: a caller with an earlier clock reading neither refills nor moves time back") {
    d::token_bucket b;
    const auto t0 = d::steady::now();
    CHECK(b.take(2, 1, t0 + milliseconds(1000)));
    CHECK(b.take(2, 1, t0 + milliseconds(1000)));
    // Read the clock before the previous caller took the bucket: no refill
    // (a negative interval would take tokens away), `last` stays.
    CHECK_FALSE(b.take(2, 1, t0));
    CHECK(b.last == t0 + milliseconds(1000));
    CHECK(b.take(2, 1, t0 + milliseconds(2000)));
}

TEST_CASE("account bucket: the sessions of one account share one bucket") {
    auto shared = std::make_shared<d::account_bucket>();
    const auto now = d::steady::now();
    int granted = 0;
    for (int i = 0; i < 10; ++i) granted += shared->take(4, 1, now) ? 1 : 0;
    CHECK(granted == 4);
}

TEST_CASE("connect-rate limiter: per address, and bounded in the addresses it tracks") {
    d::connect_rate_limiter limiter;
    CHECK(limiter.allow("10.0.0.1", 2, 0.001));
    CHECK(limiter.allow("10.0.0.1", 2, 0.001));
    CHECK_FALSE(limiter.allow("10.0.0.1", 2, 0.001));
    CHECK(limiter.allow("10.0.0.2", 2, 0.001));  // another address has its own bucket
    // 70,000 addresses: more than it tracks (65,536). It prunes, then (all
    // buckets busy) forgets: it errs on the side of accepting, and stays bounded.
    for (int i = 0; i < 70000; ++i) CHECK(limiter.allow("192.168." + std::to_string(i), 2, 0.001));
    CHECK(d::is_loopback_address("127.0.0.1"));
    CHECK(d::is_loopback_address("127.5.6.7"));
    CHECK(d::is_loopback_address("::1"));
    CHECK_FALSE(d::is_loopback_address("10.0.0.1"));
    CHECK_FALSE(d::is_loopback_address("::ffff:10.0.0.1"));
}

namespace {
d::queued_event event(std::uint64_t sequence, std::string bytes) {
    d::queued_event e;
    e.sequence = sequence;
    e.pushed_at = d::steady::now();
    e.frame = std::make_shared<const std::string>(std::move(bytes));
    return e;
}
}  // namespace

TEST_CASE("event queue: in push order whatever the arrival order, with its size in bytes") {
    d::event_queue q;
    CHECK(q.empty());
    CHECK(q.bytes() == 0);
    q.insert(event(2, "bb"));
    q.insert(event(5, "eeeee"));
    q.insert(event(1, "a"));     // late: lands in front
    q.insert(event(3, "ccc"));   // late: lands between
    CHECK(q.size() == 4);
    CHECK(q.bytes() == 11);
    CHECK(q.front().sequence == 1);
    std::vector<std::uint64_t> order;
    while (!q.empty()) order.push_back(q.pop_front().sequence);
    CHECK(order == std::vector<std::uint64_t>{1, 2, 3, 5});
    CHECK(q.bytes() == 0);
}

TEST_CASE("event queue: moves carry the events and their size; clear empties") {
    d::event_queue a;
    a.insert(event(1, "xyz"));
    d::event_queue b(std::move(a));
    CHECK(b.size() == 1);
    CHECK(b.bytes() == 3);
    CHECK(a.bytes() == 0);  // the moved-from queue is empty (its move says so)
    d::event_queue c;
    c = std::move(b);
    CHECK(c.size() == 1);
    c.clear();
    CHECK(c.empty());
    CHECK(c.bytes() == 0);
}

TEST_CASE("lazy FIFO: allocates nothing until used, and frees its storage when emptied on request") {
    d::lazy_fifo<int> f;
    CHECK(f.empty());
    CHECK(f.size() == 0);
    f.push_back(1);
    f.push_back(2);
    CHECK(f.size() == 2);
    CHECK(f.pop_front() == 1);
    f.release_if_empty();  // not empty: kept
    CHECK(f.front() == 2);
    CHECK(f.pop_front() == 2);
    f.release_if_empty();
    CHECK(f.empty());
    f.push_back(3);
    f.clear();
    CHECK(f.empty());
}
