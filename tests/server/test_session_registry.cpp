// The session registry on its own (gatehouse/server/detail/session_registry.hpp),
// without a gateway: accounts and groups and what their changes tell the
// cluster link, presence, push order, broadcast targets, open connections
// and the destructor's clear. A small stand-in plays the connection.
#include <gatehouse/server/detail/session_registry.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace d = gatehouse::server::detail;
namespace s = gatehouse::server;

namespace {

struct fake_connection {
    std::string session_id;
    std::string account_id;
    std::string remote;
    const std::string& attached_remote_address() const noexcept { return remote; }
};

using registry = d::session_registry<fake_connection>;

std::shared_ptr<fake_connection> live(registry& r, const std::string& sid, const std::string& account,
                                      const std::string& remote = "127.0.0.1") {
    auto c = std::make_shared<fake_connection>(fake_connection{sid, account, remote});
    const auto reg = r.lock();
    reg->sessions[sid] = c;
    auto& ids = reg->accounts[account].sessions;
    ids.push_back(sid);
    return c;
}

void park(registry& r, const std::string& sid, const std::string& account) {
    const auto reg = r.lock();
    reg->sessions.erase(sid);
    auto& p = reg->parked[sid];
    p.session_id = sid;
    p.account_id = account;
}

struct emptied_log {
    std::vector<std::pair<d::membership, std::string>> seen;
    auto sink() {
        return [this](d::membership kind, const std::string& name) { seen.emplace_back(kind, name); };
    }
};

}  // namespace

TEST_CASE("session registry: live sessions of an account leave out parked ones and the one named") {
    registry r;
    live(r, "s1", "alice");
    live(r, "s2", "alice");
    live(r, "s3", "alice");
    park(r, "s3", "alice");
    live(r, "b1", "bob");
    CHECK(r.account_sessions("alice", "") == 2);
    CHECK(r.account_sessions("alice", "s1") == 1);
    CHECK(r.account_sessions("alice", "s3") == 2);
    CHECK(r.account_sessions("carol", "") == 0);
    CHECK(r.holds_account("alice"));
    CHECK_FALSE(r.holds_account("carol"));
    CHECK(r.find("s1"));
    CHECK(r.find("s1")->account_id == "alice");
    CHECK_FALSE(r.find("s3"));  // parked: no connection
    CHECK_FALSE(r.find("nope"));
    const auto reg = r.lock();
    CHECK(registry::holds(reg, "s3"));
    CHECK_FALSE(registry::holds(reg, "nope"));
}

TEST_CASE("session registry: groups take sessions held here, live or parked; the first and last member are reported") {
    registry r;
    live(r, "s1", "alice");
    live(r, "s2", "bob");
    park(r, "s2", "bob");
    int firsts = 0, emptied = 0;
    {
        const auto reg = r.lock();
        CHECK(registry::join_group(reg, "s1", "lobby", [&] { ++firsts; }));
        CHECK(registry::join_group(reg, "s2", "lobby", [&] { ++firsts; }));  // parked sessions keep their groups
        CHECK(registry::join_group(reg, "s1", "lobby", [&] { ++firsts; }));  // again: nothing changes
        CHECK_FALSE(registry::join_group(reg, "ghost", "lobby", [&] { ++firsts; }));
    }
    CHECK(firsts == 1);
    CHECK(r.group_members("lobby") == std::vector<std::string>{"s1", "s2"});
    CHECK(r.group_size("lobby") == 2);
    CHECK(r.group_size("nowhere") == 0);
    CHECK(r.group_members("nowhere").empty());
    {
        const auto reg = r.lock();
        CHECK(registry::leave_group(reg, "s1", "lobby", [&] { ++emptied; }));
        CHECK(registry::leave_group(reg, "s1", "lobby", [&] { ++emptied; }));  // not a member: nothing
        CHECK(emptied == 0);
        CHECK(registry::leave_group(reg, "s2", "lobby", [&] { ++emptied; }));
        CHECK(emptied == 1);
        CHECK_FALSE(registry::leave_group(reg, "ghost", "lobby", [&] { ++emptied; }));
        CHECK(reg->groups.empty());
        CHECK(reg->session_groups.empty());
    }
}

TEST_CASE("session registry: a forgotten session leaves its account and groups; emptied ones are reported once") {
    registry r;
    live(r, "s1", "alice");
    live(r, "s2", "alice");
    {
        const auto reg = r.lock();
        registry::join_group(reg, "s1", "red", [] {});
        registry::join_group(reg, "s1", "blue", [] {});
        registry::join_group(reg, "s2", "blue", [] {});
    }
    emptied_log log;
    {
        const auto reg = r.lock();
        reg->sessions.erase("s1");
        registry::forget_memberships(reg, "s1", "alice", log.sink());
    }
    // alice still has s2, blue still has s2; red is gone.
    REQUIRE(log.seen.size() == 1);
    CHECK(log.seen[0].first == d::membership::group);
    CHECK(log.seen[0].second == "red");
    CHECK(r.group_members("blue") == std::vector<std::string>{"s2"});
    CHECK(r.holds_account("alice"));
    {
        const auto reg = r.lock();
        reg->sessions.erase("s2");
        registry::forget_memberships(reg, "s2", "alice", log.sink());
        // Forgetting again (or an unknown session) reports nothing.
        registry::forget_memberships(reg, "s2", "alice", log.sink());
        registry::forget_memberships(reg, "ghost", "nobody", log.sink());
        CHECK(reg->accounts.empty());
        CHECK(reg->groups.empty());
        CHECK(reg->session_groups.empty());
    }
    REQUIRE(log.seen.size() == 3);
    CHECK(log.seen[1].first == d::membership::account);
    CHECK(log.seen[1].second == "alice");
    CHECK(log.seen[2].first == d::membership::group);
    CHECK(log.seen[2].second == "blue");
}

TEST_CASE("session registry: presence lists connected and parked sessions up to the limit") {
    registry r;
    live(r, "s1", "alice", "10.0.0.7");
    live(r, "s2", "alice");
    park(r, "s2", "alice");
    live(r, "s3", "alice");
    {
        const auto reg = r.lock();
        // An account entry naming a session neither live nor parked (between
        // two steps of a transition) is not reported.
        reg->sessions.erase("s3");
    }
    std::vector<s::session_presence> out;
    {
        const auto reg = r.lock();
        registry::presence(reg, "alice", "node-1", 10, out);
    }
    REQUIRE(out.size() == 2);
    CHECK(out[0].session_id == "s1");
    CHECK(out[0].where == s::session_presence::state::connected);
    CHECK(out[0].remote_address == "10.0.0.7");
    CHECK(out[0].node_id == "node-1");
    CHECK(out[1].session_id == "s2");
    CHECK(out[1].where == s::session_presence::state::parked);
    CHECK(out[1].remote_address.empty());
    std::vector<s::session_presence> one;
    {
        const auto reg = r.lock();
        registry::presence(reg, "alice", "node-1", 1, one);
        registry::presence(reg, "carol", "node-1", 10, one);
    }
    CHECK(one.size() == 1);

    const auto connected = r.presence_of("s1", "node-1");
    REQUIRE(connected);
    CHECK(connected->account_id == "alice");
    CHECK(connected->where == s::session_presence::state::connected);
    const auto parked = r.presence_of("s2", "node-1");
    REQUIRE(parked);
    CHECK(parked->account_id == "alice");
    CHECK(parked->where == s::session_presence::state::parked);
    CHECK_FALSE(r.presence_of("s3", "node-1"));
}

TEST_CASE("session registry: pushed events are numbered in one order") {
    registry r;
    auto frame = std::make_shared<const std::string>("x");
    std::uint64_t last = 0;
    for (int i = 0; i < 5; ++i) {
        const auto reg = r.lock();
        const auto e = registry::next_event(reg, frame);
        CHECK(e.sequence == last + 1);
        CHECK(e.frame == frame);
        CHECK_FALSE(e.replayed);
        last = e.sequence;
    }
}

TEST_CASE("session registry: broadcast targets, open connections, and clear") {
    registry r;
    const auto a = live(r, "s1", "alice");
    const auto b = live(r, "s2", "bob");
    auto c = live(r, "s3", "carol");
    CHECK(r.live_connections().size() == 3);
    {
        const auto others = r.live_connections(a.get());
        CHECK(others.size() == 2);
        for (const auto& o : others) CHECK(o.get() != a.get());
    }

    auto unattached = std::make_shared<fake_connection>();
    r.track_open(1, a);
    r.track_open(2, unattached);
    r.track_open(3, c);
    CHECK(r.open_connections().size() == 3);
    r.untrack_open(3);
    CHECK(r.open_connections().size() == 2);
    unattached.reset();  // gone without untrack_open: not listed
    CHECK(r.open_connections().size() == 1);

    {
        const auto reg = r.lock();
        registry::join_group(reg, "s1", "lobby", [] {});
        reg->parked["p"].account_id = "dave";
        reg->parked_events = 4;
        reg->parked_bytes = 40;
    }
    // clear() hands the connections back to be released outside the lock.
    std::weak_ptr<fake_connection> watch_c = c;
    c.reset();
    auto released = r.clear();
    CHECK(released.size() == 3);
    CHECK_FALSE(watch_c.expired());
    released.clear();
    CHECK(watch_c.expired());
    const auto reg = r.lock();
    CHECK(reg->sessions.empty());
    CHECK(reg->accounts.empty());
    CHECK(reg->groups.empty());
    CHECK(reg->session_groups.empty());
    CHECK(reg->open_connections.empty());
    CHECK(reg->parked.empty());
    CHECK(reg->parked_events == 0);
    CHECK(reg->parked_bytes == 0);
}
