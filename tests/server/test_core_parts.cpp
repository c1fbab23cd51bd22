// The gateway's small parts on their own, without a gateway: the rate
// limits and per-address counts (gatehouse/server/detail/rate_limits.hpp),
// the per-session event queue (detail/event_queue.hpp), the peer table
// (detail/peer_directory.hpp) and the timers (detail/wake_scheduler.hpp).
#include <gatehouse/server/detail/event_queue.hpp>
#include <gatehouse/server/detail/peer_directory.hpp>
#include <gatehouse/server/detail/rate_limits.hpp>
#include <gatehouse/server/detail/wake_scheduler.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
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

TEST_CASE("address connections: a cap per address, released at close, loopback uncounted unless asked") {
    d::address_connections counts;
    CHECK(counts.admit("10.0.0.1", 2));
    CHECK(counts.admit("10.0.0.1", 2));
    CHECK_FALSE(counts.admit("10.0.0.1", 2));
    CHECK(counts.admit("10.0.0.2", 2));
    CHECK(counts.addresses() == 2);
    counts.release("10.0.0.1");
    CHECK(counts.admit("10.0.0.1", 2));
    counts.release("10.0.0.2");
    CHECK(counts.addresses() == 1);  // forgotten at its last close
    counts.release("10.0.0.9");      // never admitted: nothing happens
    CHECK_FALSE(counts.admit("10.0.0.3", 0));
    CHECK(counts.addresses() == 1);  // a refusal leaves nothing behind
    for (int i = 0; i < 10; ++i) CHECK(counts.admit("127.0.0.1", 1));
    CHECK(counts.addresses() == 1);

    d::address_connections strict(true);
    CHECK(strict.admit("127.0.0.1", 1));
    CHECK_FALSE(strict.admit("127.0.0.1", 1));
    CHECK_FALSE(strict.admit("::1", 0));
}

namespace {
struct peer_stub {
    int id = 0;
};
gatehouse::protocol::guid peer_guid(std::uint8_t n) {
    gatehouse::protocol::guid g;
    g.bytes[0] = n;
    return g;
}
}  // namespace

TEST_CASE("peer directory: finds live peers, forgets on close, keeps a GUID another connection took over") {
    d::peer_directory<peer_stub> peers;
    auto a = std::make_shared<peer_stub>(peer_stub{1});
    auto b = std::make_shared<peer_stub>(peer_stub{2});
    peers.add(peer_guid(1), a);
    peers.add(peer_guid(2), b);
    CHECK(peers.find(peer_guid(1)).get() == a.get());
    CHECK_FALSE(peers.find(peer_guid(3)));
    // b takes over a's GUID; a's close must not remove b's entry.
    peers.add(peer_guid(1), b);
    peers.remove(peer_guid(1), a.get());
    CHECK(peers.find(peer_guid(1)).get() == b.get());
    peers.remove(peer_guid(1), b.get());
    CHECK_FALSE(peers.find(peer_guid(1)));
    // A peer that died without removing itself: not found, and removable by anyone.
    b.reset();
    CHECK_FALSE(peers.find(peer_guid(2)));
    CHECK(peers.size() == 1);
    peers.remove(peer_guid(2), a.get());
    CHECK(peers.size() == 0);
    peers.add(peer_guid(5), a);
    peers.clear();
    CHECK_FALSE(peers.find(peer_guid(5)));
}

namespace {
/// A transport connection whose timers the test fires by hand.
struct manual_transport final : gatehouse::server::transport_connection {
    std::vector<std::pair<std::uint32_t, std::function<void()>>> timers;
    std::vector<std::function<void()>> posted;
    void send(gatehouse::server::frame_kind, gatehouse::protocol::bytes_view) override {}
    void close(std::uint16_t, std::string_view) override {}
    void ping(std::uint32_t) override {}
    std::size_t buffered_amount() const override { return 0; }
    const std::string& remote_address() const override { return address; }
    void post(std::function<void()> fn) override { posted.push_back(std::move(fn)); }
    void post_after(std::uint32_t delay_ms, std::function<void()> fn) override {
        timers.emplace_back(delay_ms, std::move(fn));
    }
    std::string address = "10.0.0.1";
};

/// What wake_scheduler needs of a connection.
struct timed_connection : std::enable_shared_from_this<timed_connection> {
    d::deadline_hook<timed_connection> timer_hook{this};
    std::shared_ptr<gatehouse::server::transport_connection> transport;
    int woken = 0;
    void on_timer() { ++woken; }
    template <class F>
    static void post(const std::shared_ptr<timed_connection>& c, F fn) {
        c->transport->post([c, fn = std::move(fn)]() mutable { fn(*c); });
    }
};

void run_all(std::vector<std::function<void()>>& fns) {
    auto now = std::move(fns);
    fns.clear();
    for (auto& fn : now) fn();
}
}  // namespace

TEST_CASE("wake scheduler: one transport timer for every connection, armed for the earliest wake-up") {
    auto wakes = std::make_shared<d::wake_scheduler<timed_connection>>();
    auto transport = std::make_shared<manual_transport>();
    auto first = std::make_shared<timed_connection>();
    auto second = std::make_shared<timed_connection>();
    first->transport = transport;
    second->transport = transport;
    const auto now = d::steady::now();

    wakes->schedule(*first, now + std::chrono::seconds(10));
    REQUIRE(transport->timers.size() == 1);  // the driver: the first connection's transport
    CHECK(transport->timers[0].first > 9000);
    CHECK(transport->timers[0].first <= 10000);
    wakes->schedule(*second, now + std::chrono::seconds(20));
    CHECK(transport->timers.size() == 1);  // a later wake-up arms nothing new
    // An earlier one re-arms the driver (the earlier tick runs first).
    wakes->schedule(*second, now - milliseconds(1));
    REQUIRE(transport->timers.size() == 2);
    CHECK(transport->timers[1].first == 0);
    CHECK(wakes->armed() == 2);

    // The early tick fires: only `second` is due; it is posted its on_timer.
    auto early = std::move(transport->timers[1].second);
    early();
    run_all(transport->posted);
    CHECK(second->woken == 1);
    CHECK(first->woken == 0);
    CHECK(wakes->armed() == 1);

    // A cancelled wake-up is never delivered.
    wakes->cancel(*first);
    CHECK(wakes->armed() == 0);
    auto late = std::move(transport->timers[0].second);
    late();
    run_all(transport->posted);
    CHECK(first->woken == 0);
}

TEST_CASE("wake scheduler: run_after uses the deferral, else the driver, else runs at once") {
    auto wakes = std::make_shared<d::wake_scheduler<timed_connection>>();
    int ran = 0;
    wakes->run_after(50, [&] { ++ran; });
    CHECK(ran == 1);  // no deferral, no driver: at once

    auto transport = std::make_shared<manual_transport>();
    auto c = std::make_shared<timed_connection>();
    c->transport = transport;
    wakes->schedule(*c, d::steady::now() + std::chrono::hours(1));
    wakes->run_after(50, [&] { ++ran; });
    CHECK(ran == 1);
    REQUIRE(transport->timers.size() == 2);
    CHECK(transport->timers[1].first == 50);
    transport->timers[1].second();
    CHECK(ran == 2);

    std::vector<std::pair<std::uint32_t, std::function<void()>>> deferred;
    wakes->set_deferral([&](std::uint32_t delay, std::function<void()> fn) { deferred.emplace_back(delay, std::move(fn)); });
    wakes->run_after(20, [&] { ++ran; });
    REQUIRE(deferred.size() == 1);
    CHECK(deferred[0].first == 20);
    CHECK(transport->timers.size() == 2);
    deferred[0].second();
    CHECK(ran == 3);

    // The driver handed over at shutdown: nothing left to arm with.
    wakes->set_deferral(nullptr);
    CHECK(wakes->release_driver().get() == transport.get());
    wakes->run_after(5, [&] { ++ran; });
    CHECK(ran == 4);
    wakes->cancel(*c);
}
