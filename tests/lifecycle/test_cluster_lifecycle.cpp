// Lifecycle hooks, presence and liveness across gateway nodes over Redis
// (issue 12): two or three nodes in one process, each with its own
// redis_event_bus and recording_observer, all sharing one
// redis_session_store; clients on real sockets. The same without Redis, on
// the in-memory transport: test_cluster_memory.cpp.
//
// - A session dropped on A (parked) and brought back on B with the same
//   credential: A reports opened, parked, moved; B resumed(from_other_node)
//   and, at the client's 1000, closed(client_closed); one opened and one
//   closed in all.
// - A session whose lifetime ended on A, attached again later on B: B
//   reports opened (a new lifetime), not resumed.
// - account_presence on B lists A's sessions (held, A's bus id) after its
//   own (connected), bounded by limit; an unknown account has none; once A
//   died (its bus stopped dead) and its heartbeat lapsed, B stops listing
//   A's sessions.
// - Connected sessions on either node outlive the store's idle_timeout.
#include "redis_support.hpp"

using namespace gatehouse::test;
using namespace gatehouse::test::redis_lifecycle;

namespace {

const std::string moving_session = "b1111111-1111-4111-8111-111111111111";
const std::string ended_session = "b2222222-2222-4222-8222-222222222222";
const std::string carol_on_a_1 = "b3333333-3333-4333-8333-333333333333";
const std::string carol_on_b = "b4444444-4444-4444-8444-444444444444";
const std::string carol_on_a_2 = "b5555555-5555-4555-8555-555555555555";
const std::string dave_on_a = "b6666666-6666-4666-8666-666666666666";
const std::string silent_on_a = "b7777777-7777-4777-8777-777777777777";
const std::string silent_on_b = "b8888888-8888-4888-8888-888888888888";

struct cluster_options {
    std::size_t nodes = 2;
    s::gateway_options gateway = socket_options();
    ms idle_timeout = std::chrono::minutes(30);
    ms heartbeat_interval{1000};
    ms heartbeat_ttl{3000};
};

/// Nodes "node-a", "node-b"(, "node-c") over one redis-server: each its own
/// redis_event_bus, one shared redis_session_store. A's bus runs on its own
/// io_runner (`a_runner`): halting it kills A as far as the cluster can tell.
struct redis_nodes {
    explicit redis_nodes(cluster_options o) {
        store = std::make_shared<rd::redis_session_store>(runner.executor(),
                                                          store_options(server.port(), o.idle_timeout));
        const char* ids[] = {"node-a", "node-b", "node-c"};
        for (std::size_t i = 0; i < o.nodes && i < 3; ++i) {
            rd::redis_event_bus_options bo;
            bo.node_id = ids[i];
            bo.port = server.port();
            bo.heartbeat_interval = o.heartbeat_interval;
            bo.heartbeat_ttl = o.heartbeat_ttl;
            auto bus = std::make_shared<rd::redis_event_bus>(i == 0 ? a_runner.executor() : runner.executor(), bo);
            nodes.push_back(std::make_unique<observed_node>(o.gateway, store, std::move(bus)));
        }
    }
    ~redis_nodes() {
        nodes.clear();
        store->close();
    }
    observed_node& operator[](std::size_t i) { return *nodes.at(i); }

    /// Opened / closed events of `session_id` over every node.
    std::size_t total(const std::string& session_id, lifecycle_kind kind) const {
        std::size_t n = 0;
        for (const auto& node : nodes) n += count_kind(*node->obs, session_id, kind);
        return n;
    }
    std::string violations() const {
        std::string out;
        for (const auto& node : nodes) out += node->obs->lifetime_violations();
        return out;
    }
    /// Until the store's record no longer names a node (the lifetime ended
    /// and the node released it), or the record is gone.
    bool released(const std::string& session_id) {
        return eventually([&] {
            session::session_record record;
            return load_session(*store, session_id, &record) || record.node_id.empty();
        });
    }

    redis_server server;
    io_runner runner;    // the store, and the buses of B and C
    io_runner a_runner;  // A's bus
    std::shared_ptr<rd::redis_session_store> store;
    std::vector<std::unique_ptr<observed_node>> nodes;
};

}  // namespace

TEST_CASE("cluster lifecycle over Redis: dropped on A, back on B: A opened parked moved; B resumed, closed") {
    cluster_options o;
    o.nodes = 3;
    o.gateway = parking_options();
    redis_nodes cluster(o);
    auto& a = cluster[0];
    auto& b = cluster[1];
    auto& c = cluster[2];

    auto client = a.connect("alice", moving_session);
    REQUIRE(a.wait_events(moving_session, 1));
    CHECK(echo(*client, 1));
    client.reset();  // the TCP connection drops: A parks the session
    REQUIRE(a.wait_events(moving_session, 2));
    REQUIRE(eventually([&] { return a.gw->stats().parked_sessions == 1; }));

    auto back = b.connect("alice", moving_session);
    REQUIRE(b.wait_events(moving_session, 1));
    REQUIRE(a.wait_events(moving_session, 3));
    CHECK(echo(*back, 2));
    CHECK(eventually([&] { return a.gw->stats().parked_sessions == 0 && a.gw->stats().sessions == 0; }));
    // The record names B now.
    session::session_record record;
    REQUIRE_FALSE(load_session(*cluster.store, moving_session, &record));
    CHECK(record.node_id == "node-b");

    CHECK(back->close_cleanly());
    REQUIRE(b.wait_events(moving_session, 2));
    CHECK(cluster.released(moving_session));
    std::this_thread::sleep_for(ms(300));  // anything late would show now

    const auto on_a = a.obs->events_of(moving_session);
    const auto on_b = b.obs->events_of(moving_session);
    CHECK_MESSAGE(kinds(*a.obs, moving_session) == "opened parked moved", a.obs->trace(moving_session));
    CHECK(a.obs->trace(moving_session).rfind("opened(created) parked(dropped,1006) moved", 0) == 0);
    CHECK(b.obs->trace(moving_session) == "resumed(from_other_node) closed(client_closed,1000)");
    for (const auto& e : on_a) CHECK(e.node_id == "node-a");
    for (const auto& e : on_b) {
        CHECK(e.node_id == "node-b");
        CHECK(e.account_id == "alice");
    }
    CHECK(c.obs->count_of(moving_session) == 0);
    CHECK(cluster.total(moving_session, lifecycle_kind::opened) == 1);
    CHECK(cluster.total(moving_session, lifecycle_kind::closed) == 1);
    CHECK_MESSAGE(cluster.violations().empty(), cluster.violations());
}

TEST_CASE("cluster lifecycle over Redis: a session that ended on A, attached again later on B, opens anew") {
    redis_nodes cluster(cluster_options{});
    auto& a = cluster[0];
    auto& b = cluster[1];

    auto first = a.connect("bob", ended_session);
    REQUIRE(a.wait_events(ended_session, 1));
    CHECK(first->close_cleanly());
    REQUIRE(a.wait_events(ended_session, 2));
    CHECK(a.obs->trace(ended_session) == "opened(created) closed(client_closed,1000)");
    // A released the record at the end of the lifetime.
    REQUIRE(cluster.released(ended_session));
    const bool record_kept = !load_session(*cluster.store, ended_session);

    auto second = b.connect("bob", ended_session);
    REQUIRE(b.wait_events(ended_session, 1));
    const auto opened = b.obs->events_of(ended_session).at(0);
    CHECK_MESSAGE(opened.kind == lifecycle_kind::opened, b.obs->trace(ended_session));
    // A record that outlived its lifetime is reused (created false).
    if (record_kept) CHECK_FALSE(opened.created);
    MESSAGE("after the 1000 close on A the record " << std::string(record_kept ? "stays" : "is gone")
                                                    << "; B reported " << b.obs->trace(ended_session));
    CHECK(echo(*second, 1));
    CHECK(second->close_cleanly());
    REQUIRE(b.wait_events(ended_session, 2));
    std::this_thread::sleep_for(ms(300));
    CHECK(kinds(*b.obs, ended_session) == "opened closed");
    CHECK(a.obs->count_of(ended_session) == 2);  // nothing more on A
    CHECK(cluster.total(ended_session, lifecycle_kind::opened) == 2);
    CHECK(cluster.total(ended_session, lifecycle_kind::closed) == 2);
    CHECK(cluster.total(ended_session, lifecycle_kind::resumed) == 0);
    CHECK(cluster.total(ended_session, lifecycle_kind::moved) == 0);
    CHECK_MESSAGE(cluster.violations().empty(), cluster.violations());
}

TEST_CASE("cluster presence over Redis: B lists A's sessions (held) after its own, bounded; not once A died") {
    cluster_options o;
    o.heartbeat_interval = ms(100);
    o.heartbeat_ttl = ms(400);
    redis_nodes cluster(o);
    auto& a = cluster[0];
    auto& b = cluster[1];
    REQUIRE(a.id() == "node-a");

    auto a1 = a.connect("carol", carol_on_a_1);
    auto a2 = a.connect("carol", carol_on_a_2);
    auto other = a.connect("dave", dave_on_a);
    auto b1 = b.connect("carol", carol_on_b);

    presence_answer seen;
    REQUIRE_MESSAGE(eventually([&] {
                        seen = account_presence(*b.gw, "carol");
                        return !seen.error && seen.sessions.size() == 3;
                    }),
                    "B sees: " << describe(seen.sessions) << " (" << seen.error.message() << ")");
    // This node's first, then the others'.
    CHECK(seen.sessions.at(0).session_id == carol_on_b);
    const auto* own = seen.find(carol_on_b);
    REQUIRE(own != nullptr);
    CHECK(own->where == s::session_presence::state::connected);
    CHECK(own->node_id == "node-b");
    CHECK(own->account_id == "carol");
    CHECK_FALSE(own->remote_address.empty());
    for (const auto& id : {carol_on_a_1, carol_on_a_2}) {
        const auto* held = seen.find(id);
        REQUIRE_MESSAGE(held != nullptr, describe(seen.sessions));
        CHECK(held->where == s::session_presence::state::held);
        CHECK(held->node_id == "node-a");
        CHECK(held->account_id == "carol");
    }
    CHECK(seen.find(dave_on_a) == nullptr);

    // Bounded by limit: this node's first.
    const auto two = account_presence(*b.gw, "carol", 2);
    CHECK_FALSE(two.error);
    REQUIRE(two.sessions.size() == 2);
    CHECK(two.sessions[0].session_id == carol_on_b);
    CHECK(two.sessions[1].where == s::session_presence::state::held);
    const auto one = account_presence(*b.gw, "carol", 1);
    CHECK_FALSE(one.error);
    REQUIRE(one.sessions.size() == 1);
    CHECK(one.sessions[0].session_id == carol_on_b);
    // Seen from A: its two, then B's.
    const auto from_a = account_presence(*a.gw, "carol");
    CHECK_FALSE(from_a.error);
    CHECK_MESSAGE(from_a.sessions.size() == 3, describe(from_a.sessions));
    if (const auto* held = from_a.find(carol_on_b)) {
        CHECK(held->where == s::session_presence::state::held);
        CHECK(held->node_id == "node-b");
    }
    // An account nobody has: empty, no error.
    const auto nobody = account_presence(*b.gw, "nobody-at-all");
    CHECK_FALSE(nobody.error);
    CHECK(nobody.sessions.empty());
    const auto dave = account_presence(*b.gw, "dave");
    CHECK_FALSE(dave.error);
    REQUIRE(dave.sessions.size() == 1);
    CHECK(dave.sessions[0].node_id == "node-a");
    // A limit out of range.
    CHECK(account_presence(*b.gw, "carol", 0).error == s::server_errc::invalid_limit);

    // A dies: its bus stops dead (no heartbeat, nothing withdrawn); its
    // gateway lingers and its records still name it.
    cluster.a_runner.halt();
    const auto died = clock_type::now();
    REQUIRE(eventually([&] { return !node_alive(*b.bus, "node-a"); }));
    const auto lapsed = std::chrono::duration_cast<ms>(clock_type::now() - died);
    session::session_record record;
    if (!load_session(*cluster.store, carol_on_a_1, &record)) CHECK(record.node_id == "node-a");
    presence_answer after;
    CHECK_MESSAGE(eventually([&] {
                      after = account_presence(*b.gw, "carol");
                      return !after.error && after.sessions.size() == 1;
                  }),
                  "B still sees: " << describe(after.sessions));
    REQUIRE(after.sessions.size() == 1);
    CHECK(after.sessions[0].session_id == carol_on_b);
    CHECK(after.sessions[0].where == s::session_presence::state::connected);
    const auto dave_after = account_presence(*b.gw, "dave");
    CHECK_FALSE(dave_after.error);
    CHECK(dave_after.sessions.empty());
    MESSAGE("presence: node A's heartbeat lapsed " << lapsed.count() << " ms after it died (heartbeat_ttl "
                                                   << o.heartbeat_ttl.count() << " ms); B then lists only its own");
    CHECK(b1->close_cleanly());
}

TEST_CASE("cluster liveness over Redis: connected sessions on both nodes outlive the store's idle_timeout") {
    cluster_options o;
    o.idle_timeout = ms(400);
    redis_nodes cluster(o);
    auto& a = cluster[0];
    auto& b = cluster[1];

    auto on_a = a.connect("erin", silent_on_a);
    auto on_b = b.connect("fred", silent_on_b);
    std::this_thread::sleep_for(3 * o.idle_timeout);  // both silent
    session::session_record record;
    CHECK_FALSE(load_session(*cluster.store, silent_on_a, &record));
    CHECK(record.node_id == "node-a");
    CHECK_FALSE(load_session(*cluster.store, silent_on_b, &record));
    CHECK(record.node_id == "node-b");
    CHECK(a.gw->stats().session_refreshes >= 3);
    CHECK(b.gw->stats().session_refreshes >= 3);
    CHECK(a.gw->stats().session_refresh_failures == 0);
    CHECK(b.gw->stats().session_refresh_failures == 0);
    // Still held: presence from the other node lists them.
    const auto seen = account_presence(*a.gw, "fred");
    CHECK_FALSE(seen.error);
    REQUIRE_MESSAGE(seen.sessions.size() == 1, describe(seen.sessions));
    CHECK(seen.sessions[0].where == s::session_presence::state::held);
    CHECK(seen.sessions[0].node_id == "node-b");
    MESSAGE("cluster liveness: " << a.gw->stats().session_refreshes << " refreshes on A, "
                                 << b.gw->stats().session_refreshes << " on B in "
                                 << (3 * o.idle_timeout).count() << " ms (idle_timeout " << o.idle_timeout.count()
                                 << " ms)");
    CHECK(echo(*on_a, 1));
    CHECK(echo(*on_b, 1));
    CHECK(on_a->close_cleanly());
    CHECK(on_b->close_cleanly());
    CHECK(a.wait_events(silent_on_a, 2));
    CHECK(b.wait_events(silent_on_b, 2));
    CHECK(a.obs->trace(silent_on_a) == "opened(created) closed(client_closed,1000)");
    CHECK(b.obs->trace(silent_on_b) == "opened(created) closed(client_closed,1000)");
}
