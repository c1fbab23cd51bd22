// The gateway's timers: the deadline queue every connection's wake-up goes
// through (ordering, moving, cancellation), and several kinds of timed work
// sharing it (pings, handler timeouts, server-to-client call timeouts, token
// expiry, the manifest delay) on many connections at once.
#include "harness.hpp"

#include <gatehouse/server/deadline_queue.hpp>

#include <algorithm>
#include <random>

using namespace gatehouse::test;
using p::response_code;
using namespace std::chrono_literals;

namespace {

struct sleeper {
    int id = 0;
    s::detail::deadline_hook<sleeper> hook{this};
};

using queue = s::detail::deadline_queue<sleeper>;
using steady = std::chrono::steady_clock;

std::vector<int> drain(queue& q, steady::time_point now) {
    std::vector<int> out;
    while (auto* s = q.pop_due(now)) out.push_back(s->id);
    return out;
}

}  // namespace

TEST_CASE("deadline_queue: pops in deadline order, only what is due") {
    const auto t0 = steady::time_point{} + 1h;
    std::vector<sleeper> all(200);
    std::vector<int> expected;
    std::mt19937 rng(7);
    queue q;
    for (int i = 0; i < 200; ++i) {
        all[i].id = i;
        // Distinct deadlines: i-th gets a unique shuffled slot.
        expected.push_back(i);
    }
    std::shuffle(expected.begin(), expected.end(), rng);
    for (int slot = 0; slot < 200; ++slot) q.schedule(all[expected[slot]].hook, t0 + std::chrono::milliseconds(slot));
    CHECK(q.size() == 200);
    CHECK(q.next_due() == t0);
    CHECK(q.pop_due(t0 - 1ms) == nullptr);
    const auto first_half = drain(q, t0 + 99ms);
    CHECK(first_half == std::vector<int>(expected.begin(), expected.begin() + 100));
    CHECK(q.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK_FALSE(all[expected[i]].hook.armed());
    CHECK(drain(q, t0 + 1h) == std::vector<int>(expected.begin() + 100, expected.end()));
    CHECK(q.empty());
}

TEST_CASE("deadline_queue: moving a hook earlier or later keeps one entry") {
    const auto t0 = steady::time_point{} + 1h;
    sleeper a, b, c;
    a.id = 1;
    b.id = 2;
    c.id = 3;
    queue q;
    q.schedule(a.hook, t0 + 10ms);
    q.schedule(b.hook, t0 + 20ms);
    q.schedule(c.hook, t0 + 30ms);
    q.schedule(c.hook, t0 + 5ms);   // earlier
    q.schedule(a.hook, t0 + 40ms);  // later
    CHECK(q.size() == 3);
    CHECK(c.hook.due() == t0 + 5ms);
    CHECK(drain(q, t0 + 1h) == std::vector<int>{3, 2, 1});
}

TEST_CASE("deadline_queue: cancellation anywhere in the heap; cancelling twice is harmless") {
    const auto t0 = steady::time_point{} + 1h;
    std::vector<sleeper> all(50);
    queue q;
    for (int i = 0; i < 50; ++i) {
        all[i].id = i;
        q.schedule(all[i].hook, t0 + std::chrono::milliseconds((i * 37) % 50));
    }
    std::vector<int> kept;
    for (int i = 0; i < 50; ++i) {
        if (i % 3 == 0) {
            q.cancel(all[i].hook);
            CHECK_FALSE(all[i].hook.armed());
            q.cancel(all[i].hook);
        } else {
            kept.push_back(i);
        }
    }
    CHECK(q.size() == kept.size());
    std::sort(kept.begin(), kept.end(), [](int x, int y) { return (x * 37) % 50 < (y * 37) % 50; });
    CHECK(drain(q, t0 + 1h) == kept);
    // A cancelled hook can be armed again.
    q.schedule(all[0].hook, t0);
    CHECK(drain(q, t0) == std::vector<int>{0});
}

namespace {
void many_connections_every_kind_of_timer(std::size_t io_threads) {
    auto o = default_options();
    o.ping_interval = 25ms;
    o.pong_timeout = 1000ms;
    o.handler_timeout = 80ms;
    o.manifest_delay = 15ms;
    standard_fixture f(o);
    if (io_threads > 0) f.h.start_threads(io_threads);
    std::vector<std::shared_ptr<s::memory_client>> clients;
    for (int i = 0; i < 12; ++i) {
        const std::string session = "6f9619ff-8b86-4d11-b42d-00c04fc964" + std::to_string(10 + i);
        // Every third session's token expires while it is connected (late
        // enough for the handler timeouts below even in a sanitizer build).
        clients.push_back(f.h.connect(token("user" + std::to_string(i), session, "", "", "sync", i % 3 == 0 ? 1500 : -1)));
    }
    for (const auto& c : clients) REQUIRE(harness::manifest_of(*c).has_value());

    // A handler that never answers on every connection: each is answered 60
    // after handler_timeout, while the pings go on.
    const auto sent = steady::now();
    for (std::size_t i = 0; i < clients.size(); ++i)
        clients[i]->send_binary(p::bytes_view(harness::request(harness::guid_of(*clients[i], "/hold"), "{}",
                                                               p::message_flags::none, 0, 1, 100 + i)));
    const bool all_answered = f.h.run_until([&] {
        for (const auto& c : clients)
            if (harness::responses(*c).empty()) return false;
        return true;
    });
    if (!all_answered)
        for (std::size_t i = 0; i < clients.size(); ++i)
            MESSAGE("client " << i << " replies " << harness::responses(*clients[i]).size() << " frames "
                              << clients[i]->frame_count() << " pings " << clients[i]->pings() << " closed "
                              << clients[i]->closed() << " held " << f.held->size());
    CHECK(steady::now() - sent >= 75ms);
    for (std::size_t i = 0; i < clients.size(); ++i) {
        const auto replies = harness::responses(*clients[i]);
        REQUIRE(replies.size() == 1);
        CHECK(replies[0].frame.code == response_code::backend_internal_error);
        CHECK(replies[0].frame.message_id == 100 + i);
    }

    // Server-to-client calls time out on their own deadlines.
    std::atomic<int> timed_out{0};
    for (int i = 1; i < 12; i += 3) {
        s::client_call_options call;
        call.timeout = 40ms;
        const std::string session = "6f9619ff-8b86-4d11-b42d-00c04fc964" + std::to_string(10 + i);
        REQUIRE_FALSE(f.h.gw.call_client(
            session, "{}",
            [&timed_out](std::error_code ec, s::client_reply) {
                if (ec == s::server_errc::client_call_timeout) timed_out.fetch_add(1);
            },
            call));
    }
    f.h.run_until([&] { return timed_out.load() == 4; });

    // Token expiry closes exactly the sessions whose token ran out.
    f.h.run_until([&] {
        for (std::size_t i = 0; i < clients.size(); i += 3)
            if (!clients[i]->closed()) return false;
        return true;
    });
    f.h.settle(60ms);
    for (std::size_t i = 0; i < clients.size(); ++i) {
        if (i % 3 == 0) {
            CHECK(clients[i]->server_close_code() == 4001);
        } else {
            CHECK_FALSE(clients[i]->closed());
            // Over 1.5 s connected at 25 ms intervals: many pings each.
            CHECK(clients[i]->pings() >= 20);
        }
    }

    // Closed connections leave the queue; the others keep pinging.
    const auto pings_before = clients[1]->pings();
    for (std::size_t i = 2; i < clients.size(); i += 3) clients[i]->close();
    f.h.run_until([&] { return f.h.gw.stats().connections == 4; });
    f.h.run_until([&] { return clients[1]->pings() >= pings_before + 3; });
}
}  // namespace

TEST_CASE("timers: many connections share one queue; every kind of timed work fires on time") {
    many_connections_every_kind_of_timer(0);
}

TEST_CASE("timers: the same with two I/O threads (connections on different strands)") {
    many_connections_every_kind_of_timer(2);
}

TEST_CASE("timers: a refreshed identity without expiry cancels the pending expiry") {
    auto o = default_options();
    o.refresh_endpoint = true;
    harness h(o);
    auto c = h.connect(token("alice", session_a, "", "", "sync", 150));
    const auto refresh = harness::guid_of(*c, "/connect/refresh");
    const auto reply = h.call(*c, harness::request(refresh, R"({"accessToken":")" + token("alice", session_a) + "\"}"));
    CHECK(reply.frame.code == response_code::ok);
    h.settle(300ms);
    CHECK_FALSE(c->closed());
}
