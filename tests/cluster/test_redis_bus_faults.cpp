// redis_event_bus under failure: Redis killed and restarted, paused, a
// connection killed under a node, garbage on the wire, a node that crashes.
// Each case runs its own redis-server, so that killing it disturbs nobody.
// Also: targeted messages trimmed or expired before a node read them are
// counted (stream_gaps), and never counted when nothing was lost.
#include "../support/redis_server.hpp"
#include "io_runner.hpp"

#include <gatehouse/adapters/redis/redis_event_bus.hpp>
#include <gatehouse/testing/event_bus_conformance.hpp>

#include <asio/post.hpp>
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace gatehouse::cluster;
using namespace gatehouse::testing::bus_conformance;
using gatehouse::adapters::redis::redis_event_bus;
using gatehouse::adapters::redis::redis_event_bus_options;
using gatehouse::test::redis_server;
using clock_type = std::chrono::steady_clock;

struct cluster_fixture {
    explicit cluster_fixture(redis_server::options redis_options = {}) : redis(std::move(redis_options)) {}

    redis_server redis;
    gatehouse::test::io_runner io{2};
    const std::string prefix = "gh-faults:";
    /// Short, so that crashes are noticed quickly in the tests.
    std::chrono::milliseconds heartbeat_ttl{1000};
    std::size_t stream_max_length = 10000;
    std::chrono::milliseconds stream_retention{60000};

    redis_event_bus_options options(const std::string& id) const {
        redis_event_bus_options o;
        o.node_id = id;
        o.port = redis.port();
        o.key_prefix = prefix;
        o.command_timeout = std::chrono::milliseconds(300);
        o.reconnect_delay_min = std::chrono::milliseconds(20);
        o.reconnect_delay_max = std::chrono::milliseconds(100);
        o.heartbeat_interval = std::chrono::milliseconds(100);
        o.heartbeat_ttl = heartbeat_ttl;
        o.read_block = std::chrono::milliseconds(200);
        o.stream_max_length = stream_max_length;
        o.stream_retention = stream_retention;
        return o;
    }

    node make(const std::string& id) {
        node n{id, std::make_shared<redis_event_bus>(io.executor(), options(id))};
        REQUIRE_FALSE(subscribe(*n.bus, *n.inbox));
        return n;
    }

    /// Kills the Redis connection(s) of a node whose CLIENT SETNAME ends in `role`.
    int kill_connection(const std::string& node_id, const std::string& role) {
        std::istringstream list(redis.command({"CLIENT", "LIST"}));
        std::string line;
        int killed = 0;
        const auto name = "name=gatehouse-bus:" + node_id + ":" + role + " ";
        while (std::getline(list, line)) {
            if ((line + " ").find(name) == std::string::npos) continue;
            const auto id_at = line.find("id=");
            const auto id = line.substr(id_at + 3, line.find(' ', id_at) - id_at - 3);
            if (redis.command({"CLIENT", "KILL", "ID", id}) == "1") ++killed;
        }
        return killed;
    }
};

/// A node on an io_context of its own, so that it can be held off: stall()
/// blocks that io_context's only thread (no reads, no heartbeats, no timers)
/// while Redis keeps the node's connections, until release().
struct stallable {
    stallable(cluster_fixture& f, const std::string& id) : n{id, nullptr} {
        n.bus = std::make_shared<redis_event_bus>(io->executor(), f.options(id));
        REQUIRE_FALSE(subscribe(*n.bus, *n.inbox));
    }
    ~stallable() {
        release();
        n.bus.reset();
        io.reset();
    }

    void stall() {
        REQUIRE_FALSE(gate_);
        gate_ = std::make_unique<std::promise<void>>();
        std::promise<void> started;
        auto running = started.get_future();
        asio::post(io->executor(), [held = gate_->get_future().share(), &started] {
            started.set_value();
            held.wait();
        });
        running.wait();
    }
    void release() {
        if (gate_) gate_->set_value();
        gate_.reset();
    }

    std::unique_ptr<gatehouse::test::io_runner> io = std::make_unique<gatehouse::test::io_runner>(1);
    node n;

private:
    std::unique_ptr<std::promise<void>> gate_;
};

/// The payloads in a node's stream, oldest first (what Redis still holds).
std::vector<std::string> stream_payloads(const redis_server& redis, const std::string& key) {
    std::vector<std::string> out;
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", redis.port(), tv);
    REQUIRE(c != nullptr);
    REQUIRE(c->err == 0);
    const char* argv[] = {"XRANGE", key.c_str(), "-", "+"};
    auto* reply = static_cast<redisReply*>(redisCommandArgv(c, 4, argv, nullptr));
    REQUIRE(reply != nullptr);
    REQUIRE(reply->type == REDIS_REPLY_ARRAY);
    for (std::size_t i = 0; i < reply->elements; ++i) {
        const auto* fields = reply->element[i]->element[1];
        REQUIRE(fields->elements == 2);
        envelope_view e;
        REQUIRE_FALSE(decode_envelope({fields->element[1]->str, fields->element[1]->len}, e));
        out.emplace_back(e.payload);
    }
    freeReplyObject(reply);
    redisFree(c);
    return out;
}

/// Publishes `count` messages (payloads prefix + i) without waiting for each:
/// they are pipelined on one connection, so they keep their order. Returns
/// how many reached one node.
std::size_t publish_many(event_bus& bus, message_kind kind, const std::string& target, const std::string& prefix,
                         int count) {
    struct tally {
        std::atomic<int> done{0}, reached{0};
        std::promise<void> all;
    };
    auto t = std::make_shared<tally>();
    for (int i = 0; i < count; ++i) {
        bus.publish(kind, target, prefix + std::to_string(i), [t, count](std::error_code ec, std::size_t nodes) {
            if (!ec && nodes == 1) ++t->reached;
            if (++t->done == count) t->all.set_value();
        });
    }
    auto f = t->all.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    return static_cast<std::size_t>(t->reached.load());
}

std::vector<std::string> payloads_of(const collector& inbox, message_kind kind, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& m : inbox.messages())
        if (m.kind == kind && m.payload.rfind(prefix, 0) == 0) out.push_back(m.payload);
    return out;
}

/// After this, `to` has finished the checks its reader had under way: two
/// messages published one after the other, each awaited, the second read
/// after whatever read (checked or not) took the first.
void settle(node& from, node& to, const std::string& target, message_kind kind) {
    static std::atomic<int> counter{0};
    for (int i = 0; i < 2; ++i) {
        const auto marker = "zz-" + std::to_string(counter++);
        REQUIRE(publish(*from.bus, kind, target, marker).nodes == 1);
        REQUIRE(to.inbox->wait_for(marker));
    }
}

bool unavailable(std::error_code ec) { return ec == cluster_errc::bus_unavailable || ec == cluster_errc::timeout; }

}  // namespace

TEST_CASE("redis_event_bus: Redis killed and restarted: prompt errors, then recovery without redeclaring") {
    cluster_fixture f;
    node a = f.make("rk-a");
    node b = f.make("rk-b");
    node c = f.make("rk-c");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-1"));
    REQUIRE_FALSE(declare(*b.bus, interest_kind::group, "g-1"));
    REQUIRE_FALSE(declare(*c.bus, interest_kind::account, "acc-1"));
    CHECK(publish(*a.bus, message_kind::to_session, "s-1", "before").nodes == 1);
    REQUIRE(b.inbox->wait_for("before"));

    f.redis.kill();
    // Every operation fails promptly with a clear error while Redis is down.
    const auto start = clock_type::now();
    const auto p = publish(*a.bus, message_kind::to_session, "s-1", "while-down");
    CHECK(unavailable(p.ec));
    CHECK(unavailable(declare(*a.bus, interest_kind::group, "g-2")));
    CHECK(unavailable(alive(*a.bus, "rk-b").first));
    CHECK(unavailable(publish(*a.bus, message_kind::to_all, "", "while-down").ec));
    CHECK(clock_type::now() - start < std::chrono::milliseconds(1500));
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_group, "g-1", "x").ec == cluster_errc::bus_unavailable; }));
    CHECK(a.bus->stats().publish_failed >= 3);

    f.redis.restart();  // empty: no persistence
    // Each node registers its declarations again by itself.
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_session, "s-1", "after-s").nodes == 1; }));
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_group, "g-1", "after-g").nodes == 1; }));
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_account, "acc-1", "after-a").nodes == 1; }));
    // a's declaration made while Redis was down is in effect now too.
    CHECK(eventually([&] { return publish(*b.bus, message_kind::to_group, "g-2", "to-a").nodes == 1; }));
    CHECK(b.inbox->wait_for("after-s"));
    CHECK(b.inbox->wait_for("after-g"));
    CHECK(c.inbox->wait_for("after-a"));
    // Every node's subscriber is back before the fence's broadcast.
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_all, "", "probe").nodes == 2; }));
    CHECK(a.inbox->wait_for("to-a"));
    fence(a, {&b, &c});
    CHECK(b.inbox->count("while-down") == 0);
    CHECK(b.inbox->count("before") == 1);
    CHECK(b.bus->stats().reconnects >= 2);
    CHECK(b.bus->stats().duplicates == 0);
    // b's stream, which it had read from, went with the Redis: one gap, of
    // unknown size. c had never been sent anything before.
    CHECK(b.bus->stats().stream_gaps == 1);
    CHECK(b.bus->stats().stream_messages_lost == 0);
    CHECK(c.bus->stats().stream_gaps == 0);
}

TEST_CASE("redis_event_bus: nothing targeted is lost or doubled when a node's connections drop") {
    cluster_fixture f;
    node a = f.make("dc-a");
    node b = f.make("dc-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-dc"));
    REQUIRE_FALSE(declare(*b.bus, interest_kind::group, "g-dc"));
    constexpr int total = 300;
    int group_sent = 0;
    for (int i = 0; i < total; ++i) {
        // Each kill waits for the node to have reconnected since the last.
        if (i % 50 == 10) CHECK(eventually([&] { return f.kill_connection("dc-b", "stream") == 1; }));
        if (i % 100 == 60) CHECK(eventually([&] { return f.kill_connection("dc-b", "pubsub") == 1; }));
        const auto r = publish(*a.bus, message_kind::to_session, "s-dc", "m" + std::to_string(i));
        REQUIRE_FALSE(r.ec);
        CHECK(r.nodes == 1);
        if (publish(*a.bus, message_kind::to_group, "g-dc", "g").nodes == 1) ++group_sent;
    }
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_group, "g-dc", "g-last").nodes == 1; }));
    fence(a, {&b});
    const auto got = b.inbox->messages();
    std::vector<std::string> targeted;
    for (const auto& m : got)
        if (m.kind == message_kind::to_session) targeted.push_back(m.payload);
    REQUIRE(targeted.size() == total);  // every one, once
    for (int i = 0; i < total; ++i) CHECK(targeted[static_cast<std::size_t>(i)] == "m" + std::to_string(i));
    // Pub/sub is best-effort across a drop, but never doubled.
    CHECK(b.inbox->count("g") <= static_cast<std::size_t>(group_sent));
    CHECK(b.inbox->count("g-last") == 1);
    CHECK(b.bus->stats().duplicates == 0);
    CHECK(b.bus->stats().reconnects >= 6);
}

TEST_CASE("redis_event_bus: a paused Redis times out, then recovers") {
    cluster_fixture f;
    node a = f.make("ps-a");
    node b = f.make("ps-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-p"));
    f.redis.pause();
    const auto start = clock_type::now();
    const auto r = publish(*a.bus, message_kind::to_session, "s-p", "paused");
    CHECK(unavailable(r.ec));
    CHECK(clock_type::now() - start < std::chrono::milliseconds(1500));
    f.redis.resume();
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_session, "s-p", "resumed").nodes == 1; }));
    CHECK(b.inbox->wait_for("resumed"));
    fence(a, {&b});
    CHECK(b.inbox->count("resumed") == 1);
}

TEST_CASE("redis_event_bus: foreign bytes on the channels and the stream are counted, never delivered") {
    cluster_fixture f;
    node a = f.make("fb-a");
    node b = f.make("fb-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::group, "room"));
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-f"));
    // Valid envelopes on the wrong path, garbage, an entry without "e".
    const auto session_envelope = valid_envelope(message_kind::to_session, "s-f", "wrong-path", "fb-x", 1);
    const auto other_group = valid_envelope(message_kind::to_group, "other", "wrong-group", "fb-x", 2);
    const auto broadcast = valid_envelope(message_kind::to_all, "", "wrong-stream", "fb-x", 3);
    CHECK(f.redis.command({"PUBLISH", f.prefix + "all", session_envelope}) == "2");
    CHECK(f.redis.command({"PUBLISH", f.prefix + "g:room", other_group}) == "1");
    CHECK(f.redis.command({"PUBLISH", f.prefix + "all", "garbage"}) == "2");
    CHECK(f.redis.command({"XADD", f.prefix + "n:fb-b", "*", "e", broadcast}).rfind("ERR", 0) != 0);
    CHECK(f.redis.command({"XADD", f.prefix + "n:fb-b", "*", "x", "no envelope"}).rfind("ERR", 0) != 0);
    // And a valid one with a newer format version.
    auto newer = valid_envelope(message_kind::to_all, "", "newer", "fb-x", 4);
    newer[2] = 7;
    CHECK(f.redis.command({"PUBLISH", f.prefix + "all", newer}) == "2");
    fence(a, {&b});
    CHECK(b.inbox->messages().empty());
    const auto s = b.bus->stats();
    CHECK(s.malformed == 5);
    CHECK(s.incompatible_version == 1);
    CHECK(a.bus->stats().malformed == 2);  // a hears the "all" channel too
    // A duplicate replayed on the stream after the real one.
    REQUIRE(publish(*a.bus, message_kind::to_session, "s-f", "real").nodes == 1);
    REQUIRE(b.inbox->wait_for("real"));
    const auto replay = valid_envelope(message_kind::to_session, "s-f", "replayed", "fb-x", 9);
    CHECK(f.redis.command({"XADD", f.prefix + "n:fb-b", "*", "e", replay}).rfind("ERR", 0) != 0);
    CHECK(f.redis.command({"XADD", f.prefix + "n:fb-b", "*", "e", replay}).rfind("ERR", 0) != 0);
    fence(a, {&b});
    CHECK(b.inbox->count("replayed") == 1);
    CHECK(b.bus->stats().duplicates == 1);
}

TEST_CASE("redis_event_bus: a crashed node stops being alive; its sessions can be taken over") {
    cluster_fixture f;
    node a = f.make("cr-a");
    node c = f.make("cr-c");
    auto b_io = std::make_unique<gatehouse::test::io_runner>(1);
    auto b_bus = std::make_shared<redis_event_bus>(b_io->executor(), f.options("cr-b"));
    collector b_inbox;
    REQUIRE_FALSE(subscribe(*b_bus, b_inbox));
    REQUIRE_FALSE(declare(*b_bus, interest_kind::session, "s-crash"));
    REQUIRE_FALSE(declare(*b_bus, interest_kind::account, "acc-crash"));
    CHECK(alive(*a.bus, "cr-b") == std::pair<std::error_code, bool>{{}, true});

    b_io->halt();  // no close(), no more heartbeats: what a crash looks like
    const auto start = clock_type::now();
    CHECK(eventually([&] { return alive(*a.bus, "cr-b") == std::pair<std::error_code, bool>{{}, false}; }));
    const auto noticed = clock_type::now() - start;
    CHECK(noticed < std::chrono::milliseconds(3000));  // heartbeat_ttl is 1 s
    MESSAGE("crash noticed after " << std::chrono::duration_cast<std::chrono::milliseconds>(noticed).count() << " ms");
    // Publishing to its session or account reaches nobody (and prunes the
    // directory); another node may declare the session without telling the
    // dead one.
    CHECK(publish(*a.bus, message_kind::to_session, "s-crash", "lost").nodes == 0);
    CHECK(publish(*a.bus, message_kind::to_account, "acc-crash", "lost").nodes == 0);
    CHECK(f.redis.command({"EXISTS", f.prefix + "s:s-crash"}) == "0");
    CHECK(f.redis.command({"SCARD", f.prefix + "a:acc-crash"}) == "0");
    REQUIRE_FALSE(declare(*c.bus, interest_kind::session, "s-crash"));
    CHECK(publish(*a.bus, message_kind::to_session, "s-crash", "moved").nodes == 1);
    CHECK(c.inbox->wait_for("moved"));
    b_bus.reset();
    b_io.reset();
}

TEST_CASE("redis_event_bus: a session taken over while its node was cut off is reported on reconnection") {
    cluster_fixture f;
    node a = f.make("tk-a");
    node b = f.make("tk-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-moved"));
    // Another node takes the session while b's directory entry is gone
    // (as after a Redis restart without persistence).
    CHECK(f.redis.command({"DEL", f.prefix + "s:s-moved"}) == "1");
    REQUIRE_FALSE(declare(*a.bus, interest_kind::session, "s-moved"));
    CHECK(f.kill_connection("tk-b", "commands") == 1);
    REQUIRE(b.inbox->wait_for("tk-a"));
    const auto got = b.inbox->messages();
    REQUIRE(got.size() == 1);
    CHECK(got[0].kind == message_kind::session_taken);
    CHECK(got[0].target == "s-moved");
    // b did not take it back.
    CHECK(f.redis.command({"GET", f.prefix + "s:s-moved"}) == "tk-a");
}

TEST_CASE("redis_event_bus: start-up configuration is checked") {
    gatehouse::test::io_runner io;
    auto make = [&](auto change) {
        redis_event_bus_options o;
        o.node_id = "cfg";
        change(o);
        return std::make_unique<redis_event_bus>(io.executor(), o);
    };
    CHECK_THROWS_AS(make([](auto& o) { o.node_id = "bad id"; }), std::invalid_argument);
    CHECK_THROWS_AS(make([](auto& o) { o.port = 0; }), std::invalid_argument);
    CHECK_THROWS_AS(make([](auto& o) { o.key_prefix.clear(); }), std::invalid_argument);
    CHECK_THROWS_AS(make([](auto& o) { o.heartbeat_ttl = o.heartbeat_interval; }), std::invalid_argument);
    CHECK_THROWS_AS(make([](auto& o) { o.stream_max_length = 0; }), std::invalid_argument);
    CHECK_THROWS_AS(make([](auto& o) { o.max_payload_size = max_payload_size + 1; }), std::invalid_argument);
    CHECK_THROWS_AS(make([](auto& o) { o.command_timeout = std::chrono::milliseconds(0); }), std::invalid_argument);
}

TEST_CASE("redis_event_bus: subscribe while Redis is unreachable fails promptly and recovers later") {
    redis_server redis;
    const int port = redis.port();
    redis.kill();
    gatehouse::test::io_runner io;
    redis_event_bus_options o;
    o.node_id = "late";
    o.port = port;
    o.reconnect_delay_min = std::chrono::milliseconds(20);
    o.reconnect_delay_max = std::chrono::milliseconds(50);
    redis_event_bus bus(io.executor(), o);
    collector inbox;
    CHECK(subscribe(bus, inbox) == cluster_errc::bus_unavailable);
    redis.restart();
    CHECK(eventually([&] { return alive(bus, "late") == std::pair<std::error_code, bool>{{}, true}; }));
}

TEST_CASE("redis_event_bus: a flushed script cache fails one operation, then heals") {
    cluster_fixture f;
    node a = f.make("sf-a");
    node b = f.make("sf-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-f"));
    CHECK(f.redis.command({"SCRIPT", "FLUSH"}) == "OK");
    CHECK(publish(*a.bus, message_kind::to_session, "s-f", "lost").ec == cluster_errc::backend_error);
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_session, "s-f", "healed").nodes == 1; }));
    CHECK(b.inbox->wait_for("healed"));
}

TEST_CASE("redis_event_bus: with an append-only Redis, targeted messages survive its crash and restart") {
    redis_server::options persistent;
    persistent.append_only = true;
    cluster_fixture f(persistent);
    // appendfsync always on a busy machine can hold a write for longer than
    // the tests' short heartbeat: this case is about the stream, not liveness.
    f.heartbeat_ttl = std::chrono::seconds(5);
    node a = f.make("ao-a");
    node b = f.make("ao-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::account, "acc-ao"));
    constexpr int before = 200, after = 50;
    // Acknowledged publishes are on disk (appendfsync always); the crash
    // comes while b may still be reading them.
    for (int i = 0; i < before; ++i)
        REQUIRE(publish(*a.bus, message_kind::to_account, "acc-ao", "m" + std::to_string(i)).nodes == 1);
    f.redis.kill();
    f.redis.restart();
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_account, "acc-ao", "m200").nodes == 1; }));
    for (int i = before + 1; i < before + after; ++i)
        REQUIRE(publish(*a.bus, message_kind::to_account, "acc-ao", "m" + std::to_string(i)).nodes == 1);
    fence(a, {&b});
    const auto got = b.inbox->messages();
    REQUIRE(got.size() == before + after);
    for (int i = 0; i < before + after; ++i) CHECK(got[static_cast<std::size_t>(i)].payload == "m" + std::to_string(i));
    CHECK(b.bus->stats().duplicates == 0);
    // The stream came back with its entries and its count of them.
    CHECK(b.bus->stats().stream_gaps == 0);
}

TEST_CASE("redis_event_bus: a node whose heartbeat lapsed registers its declarations again") {
    cluster_fixture f;
    node a = f.make("hl-a");
    node b = f.make("hl-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-hl"));
    REQUIRE_FALSE(declare(*b.bus, interest_kind::account, "acc-hl"));
    // What other nodes do to a node whose heartbeat they find gone (a
    // stalled Redis or host): prune it from the directory.
    CHECK(f.redis.command({"DEL", f.prefix + "hb:hl-b"}) == "1");
    CHECK(publish(*a.bus, message_kind::to_session, "s-hl", "pruned").nodes == 0);
    CHECK(publish(*a.bus, message_kind::to_account, "acc-hl", "pruned").nodes == 0);
    CHECK(f.redis.command({"EXISTS", f.prefix + "s:s-hl"}) == "0");
    // b notices at its next heartbeat and registers everything again.
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_session, "s-hl", "back-s").nodes == 1; }));
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_account, "acc-hl", "back-a").nodes == 1; }));
    CHECK(b.inbox->wait_for("back-s"));
    CHECK(b.inbox->wait_for("back-a"));
    CHECK(b.bus->stats().heartbeat_lapses >= 1);
    CHECK(b.inbox->count("pruned") == 0);
}

TEST_CASE("redis_event_bus: a node held off past its stream's cap counts the gap and gets the rest, once") {
    cluster_fixture f;
    f.heartbeat_ttl = std::chrono::seconds(5);  // b stays a live member while held off
    f.stream_max_length = 20;                   // MAXLEN ~ 20: Redis trims whole 100-entry nodes
    node a = f.make("gp-a");
    stallable b(f, "gp-b");
    REQUIRE_FALSE(declare(*b.n.bus, interest_kind::session, "s-gap"));
    REQUIRE(publish(*a.bus, message_kind::to_session, "s-gap", "warm").nodes == 1);
    REQUIRE(b.n.inbox->wait_for("warm"));

    b.stall();
    constexpr int total = 500;
    REQUIRE(publish_many(*a.bus, message_kind::to_session, "s-gap", "m", total) == total);
    std::vector<std::string> retained;
    for (auto& p : stream_payloads(f.redis, f.prefix + "n:gp-b"))
        if (p != "warm") retained.push_back(p);
    REQUIRE(retained.size() >= 20);
    REQUIRE(retained.size() < total);  // trimmed past b's position
    REQUIRE(retained.back() == "m" + std::to_string(total - 1));
    b.release();

    // (Nothing is published before b has read it all: another XADD could
    // trim further.)
    REQUIRE(b.n.inbox->wait_for(retained.back()));
    settle(a, b.n, "s-gap", message_kind::to_session);
    auto got = payloads_of(*b.n.inbox, message_kind::to_session, "m");
    const auto received = got.size();
    // What Redis still held, in order, each once; before it, the first few
    // messages, if a read under way when b was held off took them then.
    REQUIRE(received >= retained.size());
    const auto taken_early = received - retained.size();
    INFO("taken early " << taken_early);
    for (std::size_t i = 0; i < taken_early; ++i) CHECK(got[i] == "m" + std::to_string(i));
    CHECK(std::vector<std::string>(got.begin() + static_cast<std::ptrdiff_t>(taken_early), got.end()) == retained);
    REQUIRE(received < total);
    const auto stats = b.n.bus->stats();
    INFO("reconnects " << stats.reconnects << ", bad replies " << stats.bad_replies << ", retained "
                       << retained.size() << ", received " << received);
    CHECK(stats.stream_gaps == 1);
    // Exact: Redis counts every entry ever added.
    CHECK(stats.stream_messages_lost == total - received);
    CHECK(stats.duplicates == 0);
    CHECK(a.bus->stats().stream_gaps == 0);
}

TEST_CASE("redis_event_bus: a stream that expired while its node was held off is counted") {
    cluster_fixture f;
    f.stream_retention = std::chrono::milliseconds(400);
    node a = f.make("ex-a");
    stallable b(f, "ex-b");
    REQUIRE_FALSE(declare(*b.n.bus, interest_kind::session, "s-exp"));
    REQUIRE(publish(*a.bus, message_kind::to_session, "s-exp", "warm").nodes == 1);
    REQUIRE(b.n.inbox->wait_for("warm"));

    b.stall();
    REQUIRE(publish_many(*a.bus, message_kind::to_session, "s-exp", "lost-", 5) == 5);
    // Nobody refreshes the stream's TTL while b is held off.
    CHECK(eventually([&] { return f.redis.command({"EXISTS", f.prefix + "n:ex-b"}) == "0"; }));
    b.release();

    CHECK(eventually([&] { return b.n.bus->stats().stream_gaps == 1; }));
    // A new stream under the key is read from its start.
    CHECK(eventually([&] { return publish(*a.bus, message_kind::to_session, "s-exp", "after").nodes == 1; }));
    CHECK(b.n.inbox->wait_for("after"));
    fence(a, {&b.n});
    CHECK(b.n.inbox->count("after") == 1);
    for (int i = 0; i < 5; ++i) CHECK(b.n.inbox->count("lost-" + std::to_string(i)) <= 1);
    const auto stats = b.n.bus->stats();
    CHECK(stats.stream_gaps == 1);
    CHECK(stats.stream_messages_lost == 0);  // what the expired stream held is unknown
    CHECK(stats.duplicates == 0);
}

TEST_CASE("redis_event_bus: dropped connections and a slow node without trimming report no gap, lose nothing") {
    cluster_fixture f;
    f.heartbeat_ttl = std::chrono::seconds(5);
    f.stream_max_length = 2000;
    node a = f.make("ng-a");
    stallable b(f, "ng-b");
    REQUIRE_FALSE(declare(*b.n.bus, interest_kind::account, "acc-ng"));
    // Reader connection killed now and then, while messages keep coming.
    constexpr int dropped = 300;
    for (int i = 0; i < dropped; ++i) {
        if (i % 60 == 20) CHECK(eventually([&] { return f.kill_connection("ng-b", "stream") == 1; }));
        REQUIRE(publish(*a.bus, message_kind::to_account, "acc-ng", "d" + std::to_string(i)).nodes == 1);
    }
    // Far behind (1500 pending: several checked reads), but under the cap.
    b.stall();
    constexpr int behind = 1500;
    REQUIRE(publish_many(*a.bus, message_kind::to_account, "acc-ng", "s", behind) == behind);
    REQUIRE(stream_payloads(f.redis, f.prefix + "n:ng-b").size() >= dropped + behind);  // nothing trimmed
    b.release();
    REQUIRE(publish(*a.bus, message_kind::to_account, "acc-ng", "s-last").nodes == 1);
    REQUIRE(b.n.inbox->wait_for("s-last"));
    settle(a, b.n, "acc-ng", message_kind::to_account);
    const auto d = payloads_of(*b.n.inbox, message_kind::to_account, "d");
    REQUIRE(d.size() == dropped);
    for (int i = 0; i < dropped; ++i) CHECK(d[static_cast<std::size_t>(i)] == "d" + std::to_string(i));
    const auto s = payloads_of(*b.n.inbox, message_kind::to_account, "s");
    REQUIRE(s.size() == behind + 1);
    for (int i = 0; i < behind; ++i) CHECK(s[static_cast<std::size_t>(i)] == "s" + std::to_string(i));
    const auto stats = b.n.bus->stats();
    CHECK(stats.reconnects >= 5);
    CHECK(stats.stream_gaps == 0);
    CHECK(stats.stream_messages_lost == 0);
    CHECK(stats.duplicates == 0);
}

TEST_CASE("redis_event_bus: with EVAL refused (an ACL), a node still reads its stream, unchecked") {
    cluster_fixture f;
    // EVALSHA (publishing, declaring) stays allowed; the reader's checked
    // reads and its start use EVAL.
    REQUIRE(f.redis.command({"ACL", "SETUSER", "default", "-eval"}) == "OK");
    node a = f.make("ev-a");
    node b = f.make("ev-b");
    REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-ev"));
    REQUIRE(publish(*a.bus, message_kind::to_session, "s-ev", "one").nodes == 1);
    REQUIRE(b.inbox->wait_for("one"));
    CHECK(eventually([&] { return f.kill_connection("ev-b", "stream") == 1; }));  // the next read would be checked
    REQUIRE(publish(*a.bus, message_kind::to_session, "s-ev", "two").nodes == 1);
    REQUIRE(b.inbox->wait_for("two"));
    fence(a, {&b});
    CHECK(b.inbox->count("one") == 1);
    CHECK(b.inbox->count("two") == 1);
    const auto stats = b.bus->stats();
    CHECK(stats.bad_replies >= 2);  // the start and the check after the reconnection
    CHECK(stats.stream_gaps == 0);
}
