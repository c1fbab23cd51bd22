// Two gateway nodes in one process (issue 12 across nodes, without Redis):
// the in-process event bus, one shared memory session store, each node on
// its own in-memory transport, two I/O threads. The login policy
// replace_oldest closes the oldest session of an account on whichever node
// holds it; presence lists both nodes' sessions and forgets a node that
// left; the lifecycle hooks report moved on the node a session leaves and
// resumed on the node it comes to. The same over Redis:
// test_cluster_lifecycle.cpp.
#include "../server/harness.hpp"

#include <gatehouse/cluster/memory_event_bus.hpp>

#include <future>
#include <set>

using namespace gatehouse::test;
namespace cl = gatehouse::cluster;

namespace {
using ms = std::chrono::milliseconds;

/// Records every event, in order, with the node that reported it.
class recorder final : public s::session_observer {
public:
    struct entry {
        std::string node, kind, session;
        s::session_end_reason reason{};
        s::session_resume_kind resumed{};
    };
    void on_opened(const s::session_event& e) override { add(e, "opened"); }
    void on_parked(const s::session_event& e) override { add(e, "parked"); }
    void on_resumed(const s::session_event& e) override { add(e, "resumed"); }
    void on_moved(const s::session_event& e) override { add(e, "moved"); }
    void on_closed(const s::session_event& e) override { add(e, "closed"); }
    std::vector<entry> of(const std::string& session) const {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<entry> out;
        for (const auto& e : entries_)
            if (e.session == session) out.push_back(e);
        return out;
    }
    /// "node:kind" for each event of `session`.
    std::vector<std::string> trail(const std::string& session) const {
        std::vector<std::string> out;
        for (const auto& e : of(session)) out.push_back(e.node + ":" + e.kind);
        return out;
    }

private:
    void add(const s::session_event& e, const char* kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        entries_.push_back({std::string(e.node_id), kind, std::string(e.session_id), e.reason, e.resumed});
    }
    mutable std::mutex mutex_;
    std::vector<entry> entries_;
};

bool eventually(const std::function<bool()>& condition, ms timeout = ms(3000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(ms(2));
    }
    return true;
}

struct node {
    node(asio::io_context& io, std::shared_ptr<cl::memory_event_hub> hub, const std::string& id,
         std::shared_ptr<session::session_store> store, std::shared_ptr<recorder> events, s::gateway_options o) {
        cl::memory_event_bus_options bo;
        bo.node_id = id;
        bus = std::make_shared<cl::memory_event_bus>(std::move(hub), io.get_executor(), bo);
        o.event_bus = bus;
        o.observer = std::move(events);
        gw = std::make_unique<s::gateway>(std::move(o), std::make_shared<scripted_validator>(), std::move(store));
        add_standard_endpoints(*gw, std::make_shared<held_calls>());
        transport = std::make_unique<s::memory_transport>(io, gw->transport_side());
    }
    std::shared_ptr<s::memory_client> connect(const std::string& bearer) {
        s::memory_upgrade u;
        u.headers.push_back({"Authorization", "Bearer " + bearer});
        auto c = transport->connect(std::move(u));
        clients.push_back(c);
        REQUIRE(eventually([&] { return harness::manifest_of(*c).has_value() || c->closed(); }));
        return c;
    }
    std::shared_ptr<cl::memory_event_bus> bus;
    std::unique_ptr<s::gateway> gw;
    std::unique_ptr<s::memory_transport> transport;
    std::vector<std::shared_ptr<s::memory_client>> clients;
};

struct two_nodes {
    explicit two_nodes(s::gateway_options o = default_options()) {
        o.connects_per_second = 1000;
        a = std::make_unique<node>(io, hub, "node-a", store, events, o);
        b = std::make_unique<node>(io, hub, "node-b", store, events, o);
        for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
    }
    ~two_nodes() {
        for (auto* n : {a.get(), b.get()})
            for (auto& c : n->clients)
                if (!c->closed()) c->close();
        eventually([&] { return a->gw->stats().connections == 0 && b->gw->stats().connections == 0; });
        for (auto* n : {a.get(), b.get()}) {
            n->gw->stop();
            n->bus->close();
        }
        guard.reset();
        io.stop();
        for (auto& t : threads) t.join();
        a.reset();
        b.reset();
    }
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::shared_ptr<cl::memory_event_hub> hub = std::make_shared<cl::memory_event_hub>();
    std::shared_ptr<session::memory_session_store> store = std::make_shared<session::memory_session_store>();
    std::shared_ptr<recorder> events = std::make_shared<recorder>();
    std::unique_ptr<node> a, b;
    std::vector<std::thread> threads;
};

std::vector<s::session_presence> presence(s::gateway& gw, const std::string& account, std::size_t limit = 64) {
    std::promise<std::vector<s::session_presence>> answer;
    gw.account_presence(account, [&](std::error_code ec, std::vector<s::session_presence> list) {
        CHECK(ec == std::error_code{});
        answer.set_value(std::move(list));
    }, limit);
    return answer.get_future().get();
}

inline constexpr const char* session_c = "8b9619ff-8b86-4d11-b42d-00c04fc964cc";
}  // namespace

TEST_CASE("two nodes: replace_oldest closes the account's oldest session on the other node") {
    auto o = default_options();
    o.max_sessions_per_account = 1;
    o.account_session_policy = s::gateway_options::session_policy::replace_oldest;
    two_nodes cluster(o);
    auto first = cluster.a->connect(token("alice", session_a));
    REQUIRE_FALSE(first->closed());
    std::this_thread::sleep_for(ms(5));  // created_at orders them
    auto second = cluster.b->connect(token("alice", session_b));
    REQUIRE_FALSE(second->closed());
    REQUIRE(eventually([&] { return first->closed(); }));
    CHECK(first->server_close_code() == 4002);
    CHECK(first->server_close_reason() == "replaced by a newer session");
    CHECK_FALSE(second->closed());
    REQUIRE(eventually([&] { return cluster.events->trail(session_a).size() == 2; }));
    const auto trail = cluster.events->of(session_a);
    CHECK(trail[0].kind == "opened");
    CHECK(trail[1].node == "node-a");
    CHECK(trail[1].kind == "closed");
    CHECK(trail[1].reason == s::session_end_reason::replaced);
    // Another account is not touched.
    auto bob = cluster.a->connect(token("bob", session_c));
    std::this_thread::sleep_for(ms(50));
    CHECK_FALSE(bob->closed());
    CHECK_FALSE(second->closed());
}

TEST_CASE("two nodes: presence lists both nodes' sessions, bounded, and forgets a node that left") {
    two_nodes cluster;
    auto on_a = cluster.a->connect(token("alice", session_a));
    auto on_b = cluster.b->connect(token("alice", session_b));
    auto listed = presence(*cluster.b->gw, "alice");
    REQUIRE(listed.size() == 2);
    std::set<std::string> where;
    for (const auto& p : listed) {
        where.insert(p.node_id + "/" + (p.where == s::session_presence::state::connected ? "connected" : "held"));
        if (p.node_id == "node-a") CHECK(p.session_id == session_a);
    }
    CHECK(where == std::set<std::string>{"node-a/held", "node-b/connected"});
    CHECK(presence(*cluster.b->gw, "alice", 1).size() == 1);
    CHECK(presence(*cluster.b->gw, "nobody").empty());
    CHECK_FALSE(cluster.b->gw->online_here("bob"));

    // Node A leaves the cluster (its bus closes: no longer alive): its
    // sessions are not reported any more, though the store still names it.
    cluster.a->bus->close();
    REQUIRE(eventually([&] { return presence(*cluster.b->gw, "alice").size() == 1; }));
    CHECK(presence(*cluster.b->gw, "alice")[0].node_id == "node-b");

    // A session that ended names no node: not listed.
    on_b->close(1000);
    REQUIRE(eventually([&] { return presence(*cluster.b->gw, "alice").empty(); }));
}

TEST_CASE("two nodes: a session that moves reports moved on the first node and resumed on the second") {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 64 * 1024;  // parking on
    two_nodes cluster(o);
    auto first = cluster.a->connect(token("alice", session_a));
    first->drop();
    REQUIRE(eventually([&] { return cluster.a->gw->stats().parked_sessions == 1; }));
    auto back = cluster.b->connect(token("alice", session_a));
    REQUIRE_FALSE(back->closed());
    REQUIRE(eventually([&] { return cluster.events->trail(session_a).size() == 4; }));
    // Each node's events in order; the two nodes' hooks run on their own threads.
    std::vector<std::string> on_a, on_b;
    for (const auto& e : cluster.events->of(session_a)) {
        (e.node == "node-a" ? on_a : on_b).push_back(e.kind);
        if (e.kind == "resumed") CHECK(e.resumed == s::session_resume_kind::from_other_node);
    }
    CHECK(on_a == std::vector<std::string>{"opened", "parked", "moved"});
    CHECK(on_b == std::vector<std::string>{"resumed"});
    back->close(1000);
    REQUIRE(eventually([&] { return cluster.events->trail(session_a).size() == 5; }));
    CHECK(cluster.events->trail(session_a).back() == "node-b:closed");

    // Its lifetime ended on B: attached again on A, it is a new one (opened).
    std::this_thread::sleep_for(ms(50));  // B's release of the record
    auto again = cluster.a->connect(token("alice", session_a));
    REQUIRE_FALSE(again->closed());
    REQUIRE(eventually([&] { return cluster.events->trail(session_a).size() == 6; }));
    CHECK(cluster.events->trail(session_a).back() == "node-a:opened");
}
