// The gateway with an event_queue_store (gateway_options::event_queue_store):
// the events of parked sessions are queued in the store instead of the
// node's memory, and taken from it when the session is attached again. On
// the in-memory transport, with memory_event_queue_store (the Redis store
// runs the same contract: tests/session; the cluster tests run both).
#include "reconnect_helpers.hpp"

#include <gatehouse/session/memory_event_queue_store.hpp>

#include <functional>
#include <mutex>
#include <utility>

using namespace gatehouse::test;

namespace {

/// A store whose takes (or every operation) can be held back or failed.
class controlled_store final : public session::event_queue_store {
public:
    session::memory_event_queue_store inner;
    bool hold_takes = false;
    std::error_code fail_with;  ///< set: every operation fails with it
    bool fail_next_park = false;

    void park(std::string_view session_id, std::string_view node, std::vector<std::string> events,
              const session::event_queue_limits& limits, completion<session::queue_status> done) override {
        ++parks;
        if (fail_with) return done(fail_with, {});
        if (std::exchange(fail_next_park, false)) return done(session::session_errc::timeout, {});
        inner.park(session_id, node, std::move(events), limits, std::move(done));
    }
    void append(std::string_view session_id, std::string_view event, const session::event_queue_limits& limits,
                completion<session::queue_status> done) override {
        if (fail_with) return done(fail_with, {});
        inner.append(session_id, event, limits, std::move(done));
    }
    void take(std::string_view session_id, std::string_view node, const session::event_queue_limits& limits,
              completion<session::taken_events> done) override {
        ++takes;
        last_take_node = std::string(node);
        if (fail_with) return done(fail_with, {});
        if (!hold_takes) return inner.take(session_id, node, limits, std::move(done));
        // Taken now (calls take effect in order), answered later.
        inner.take(session_id, node, limits, [this, done](std::error_code ec, session::taken_events taken) {
            held.push_back([done, ec, taken = std::move(taken)]() mutable { done(ec, std::move(taken)); });
        });
    }
    void discard(std::string_view session_id, done_completion done) override {
        ++discards;
        inner.discard(session_id, std::move(done));
    }

    /// Answers the held takes.
    void release() {
        auto pending = std::move(held);
        held.clear();
        for (auto& answer : pending) answer();
    }

    int parks = 0;
    int takes = 0;
    int discards = 0;
    std::string last_take_node;
    std::vector<std::function<void()>> held;
};

s::gateway_options store_options(std::shared_ptr<session::event_queue_store> store) {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 64 * 1024;
    o.node_id = "node-x";
    o.event_queue_store = std::move(store);
    return o;
}

/// alice's session, connected once and dropped: parked on the node.
void park_alice(harness& h) {
    auto c = h.connect(token("alice", session_a));
    c->drop();
    wait_parked(h, 1);
}

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
    std::vector<std::string> names;
    for (int i = from; i < to; ++i) names.push_back(prefix + std::to_string(i));
    return names;
}

}  // namespace

TEST_CASE("event queue store: a parked session's events are queued in the store and follow the manifest") {
    auto store = std::make_shared<controlled_store>();
    harness h(store_options(store));
    auto c = h.connect(token("alice", session_a));
    REQUIRE_FALSE(h.gw.join_group(session_a, "room"));
    CHECK(store->takes == 0);  // a new session has nothing queued anywhere
    c->drop();
    wait_parked(h, 1);
    CHECK(store->parks == 1);
    for (int i = 0; i < 3; ++i) {
        CHECK_FALSE(h.gw.push_to_session(session_a, "seq." + std::to_string(i * 2)));
        CHECK(h.gw.push_to_group("room", "seq." + std::to_string(i * 2 + 1)) == 1);
    }
    auto st = h.gw.stats();
    CHECK(st.queued_events == 0);  // not in the node's memory
    CHECK(st.events_stored == 6);
    CHECK(store->inner.size() == 1);

    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*back).size() == 6; });
    const auto names = all_event_names(*back);
    REQUIRE(names.size() == 7);
    CHECK(names[0] == "connect.capability-manifest");
    CHECK(std::vector<std::string>(names.begin() + 1, names.end()) == numbered("seq.", 0, 6));
    CHECK(store->takes == 1);
    CHECK(store->last_take_node == "node-x");  // options.node_id without a bus
    st = h.gw.stats();
    CHECK(st.sessions_resumed == 1);
    CHECK(st.queued_events_delivered == 6);
    CHECK(st.queued_events_dropped == 0);
    CHECK(st.event_store_failures == 0);
    // Taken: a second connection of the same session finds nothing.
    CHECK(h.gw.push_to_group("room", "live") == 1);
    h.run_until([&] { return event_names(*back).size() == 7; });
    CHECK(event_names(*back).back() == "live");
}

TEST_CASE("event queue store: the events a dropped connection had not sent are parked with it") {
    auto store = std::make_shared<controlled_store>();
    auto options = store_options(store);
    options.manifest_delay = std::chrono::milliseconds(300);
    harness h(options);
    auto c = h.upgrade_with("Bearer " + token("alice", session_a));
    REQUIRE(c->status() == 101);
    // Attached, manifest not sent yet: pushes wait in the connection.
    h.run_until([&] { return h.gw.stats().sessions == 1; });
    for (int i = 0; i < 3; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "held." + std::to_string(i)));
    c->drop();
    wait_parked(h, 1);
    CHECK(store->parks == 1);
    CHECK(h.gw.stats().events_stored == 3);
    CHECK(h.gw.stats().queued_events == 0);
    CHECK_FALSE(h.gw.push_to_session(session_a, "held.3"));
    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*back).size() == 4; });
    CHECK(event_names(*back) == numbered("held.", 0, 4));
}

TEST_CASE("event queue store: events pushed while the take is pending come after the queued ones") {
    auto store = std::make_shared<controlled_store>();
    harness h(store_options(store));
    park_alice(h);
    for (int i = 0; i < 3; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "e." + std::to_string(i)));
    store->hold_takes = true;
    auto back = h.connect(token("alice", session_a));  // the manifest does not wait for the store
    REQUIRE(store->held.size() == 1);
    for (int i = 3; i < 6; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "e." + std::to_string(i)));
    h.settle();
    CHECK(event_names(*back).empty());
    store->release();
    h.run_until([&] { return event_names(*back).size() == 6; });
    CHECK(event_names(*back) == numbered("e.", 0, 6));
    CHECK(h.gw.stats().queued_events_delivered == 3);
}

TEST_CASE("event queue store: a connection that closes before the store answers parks the events again") {
    auto store = std::make_shared<controlled_store>();
    harness h(store_options(store));
    park_alice(h);
    for (int i = 0; i < 2; ++i) CHECK_FALSE(h.gw.push_to_session(session_a, "e." + std::to_string(i)));
    store->hold_takes = true;
    auto second = h.connect(token("alice", session_a));
    CHECK_FALSE(h.gw.push_to_session(session_a, "e.2"));  // held behind the take
    second->drop();
    wait_parked(h, 1);
    store->release();  // the take answers after the close: its events go back to the store
    h.settle();
    store->hold_takes = false;
    auto third = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*third).size() == 3; });
    // The taken ones first: what the closed connection held waited for them.
    CHECK(event_names(*third) == numbered("e.", 0, 3));
    CHECK(h.gw.stats().queued_events_dropped == 0);
}

TEST_CASE("event queue store: failures are counted and the session goes on without its queue") {
    auto store = std::make_shared<controlled_store>();
    harness h(store_options(store));
    park_alice(h);
    store->fail_with = session::session_errc::backend_unavailable;
    CHECK_FALSE(h.gw.push_to_session(session_a, "lost"));
    auto st = h.gw.stats();
    CHECK(st.event_store_failures == 1);
    CHECK(st.queued_events_dropped == 1);
    auto back = h.connect(token("alice", session_a));
    h.run_until([&] { return h.gw.stats().event_store_failures == 2; });  // the take
    CHECK_FALSE(h.gw.push_to_session(session_a, "live"));
    h.run_until([&] { return event_names(*back).size() == 1; });
    CHECK(event_names(*back) == std::vector<std::string>{"live"});
    // A park that fails counts the events it carried as dropped.
    back->drop();
    wait_parked(h, 1);
    CHECK(h.gw.stats().event_store_failures == 3);
}

TEST_CASE("event queue store: revoking a parked session discards its queue; a closed one is not parked") {
    auto store = std::make_shared<controlled_store>();
    harness h(store_options(store));
    park_alice(h);
    CHECK_FALSE(h.gw.push_to_session(session_a, "doomed"));
    CHECK(store->inner.size() == 1);
    std::error_code revoked = s::server_errc::not_running;
    h.gw.revoke_session(session_a, [&](std::error_code ec) { revoked = ec; });
    h.run_until([&] { return !revoked; });
    CHECK(store->discards == 1);
    CHECK(store->inner.size() == 0);
    CHECK(h.gw.stats().parked_sessions == 0);

    // A client that says goodbye (1000) is not parked: nothing goes to the store.
    auto b = h.connect(token("bob", session_b));
    b->close(1000);
    h.run_until([&] { return h.gw.stats().sessions == 0; });
    CHECK(store->parks == 1);
}

TEST_CASE("event queue store: option validation") {
    const auto make = [](const std::function<void(s::gateway_options&)>& change) {
        auto o = store_options(std::make_shared<session::memory_event_queue_store>());
        change(o);
        s::gateway gw(o, std::make_shared<scripted_validator>(), std::make_shared<session::memory_session_store>());
    };
    // A store with parking disabled is a contradiction, not a silent no-op.
    CHECK_THROWS_AS(make([](s::gateway_options& o) { o.reconnect_queue_max_bytes = 0; }), std::invalid_argument);
    // Without a bus the holder id is node_id: what a store accepts.
    CHECK_THROWS_AS(make([](s::gateway_options& o) { o.node_id.clear(); }), std::invalid_argument);
    CHECK_THROWS_AS(make([](s::gateway_options& o) { o.node_id.assign(65, 'n'); }), std::invalid_argument);
    CHECK_NOTHROW(make([](s::gateway_options& o) { o.node_id.assign(64, 'n'); }));
}

TEST_CASE("event queue store: after a failed park, this node's own hold does not swallow events") {
    auto store = std::make_shared<controlled_store>();
    harness h(store_options(store));
    park_alice(h);
    auto second = h.connect(token("alice", session_a));  // takes: the store names this node as holder
    REQUIRE(store->takes == 1);
    store->fail_next_park = true;
    second->drop();
    wait_parked(h, 1);
    CHECK(h.gw.stats().event_store_failures == 1);
    // The store still says this node holds it: the append is refused with
    // our own id, and the event is parked by us instead of being lost.
    CHECK_FALSE(h.gw.push_to_session(session_a, "kept"));
    h.run_until([&] { return h.gw.stats().events_stored == 1; });
    auto third = h.connect(token("alice", session_a));
    h.run_until([&] { return event_names(*third).size() == 1; });
    CHECK(event_names(*third) == std::vector<std::string>{"kept"});
}
