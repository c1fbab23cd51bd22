// Presence on one node (issue 12, item 3): whether an account is online,
// its live sessions with the node holding each, one session's info, a
// group's size; answers bounded by a limit. Across nodes (Redis, a node
// that died): test_cluster_lifecycle.cpp.
#include "../server/harness.hpp"
#include "../server/reconnect_helpers.hpp"

#include <future>

using namespace gatehouse::test;

namespace {
using ms = std::chrono::milliseconds;

std::pair<std::error_code, std::vector<s::session_presence>> presence_of(s::gateway& gw, const std::string& account,
                                                                          std::size_t limit = 64) {
    std::promise<std::pair<std::error_code, std::vector<s::session_presence>>> answer;
    gw.account_presence(account, [&](std::error_code ec, std::vector<s::session_presence> list) {
        answer.set_value({ec, std::move(list)});
    }, limit);
    return answer.get_future().get();
}
}  // namespace

TEST_CASE("presence: connected and parked sessions of an account on this node") {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 64 * 1024;
    o.node_id = "node-7";
    standard_fixture f(o);
    auto& gw = f.h.gw;

    CHECK_FALSE(gw.online_here("alice"));
    CHECK(gw.local_sessions("alice").empty());
    CHECK_FALSE(gw.local_session(session_a).has_value());
    auto nobody = presence_of(gw, "nobody");
    CHECK(nobody.first == std::error_code{});
    CHECK(nobody.second.empty());

    auto a = f.h.connect(token("alice", session_a));
    auto b = f.h.connect(token("alice", session_b));
    CHECK(gw.online_here("alice"));
    auto both = gw.local_sessions("alice");
    REQUIRE(both.size() == 2);
    for (const auto& p : both) {
        CHECK(p.account_id == "alice");
        CHECK(p.node_id == "node-7");
        CHECK(p.where == s::session_presence::state::connected);
        CHECK(p.remote_address == "127.0.0.1");
    }
    CHECK(gw.local_sessions("alice", 1).size() == 1);
    CHECK(gw.local_sessions("alice", 0).empty());  // outside 1..max_presence_results
    CHECK(gw.local_sessions("alice", gw.options().max_presence_results + 1).empty());
    auto limited = presence_of(gw, "alice", 0);
    CHECK(limited.first == s::server_errc::invalid_limit);

    // A drop parks the session: still online, now parked.
    b->drop();
    f.h.run_until([&] { return gw.stats().parked_sessions == 1; });
    const auto parked = gw.local_session(session_b);
    REQUIRE(parked.has_value());
    CHECK(parked->where == s::session_presence::state::parked);
    CHECK(parked->account_id == "alice");
    auto listed = presence_of(gw, "alice");
    CHECK(listed.first == std::error_code{});
    CHECK(listed.second.size() == 2);

    // A clean close ends it.
    a->close(1000);
    f.h.run_until([&] { return !gw.local_session(session_a).has_value(); });
    CHECK(gw.local_sessions("alice").size() == 1);
    REQUIRE_FALSE(gw.disconnect(session_b, 4002, "bye"));  // forgets the parked one
    CHECK_FALSE(gw.online_here("alice"));
}

TEST_CASE("presence: a group's size") {
    standard_fixture f;
    auto& gw = f.h.gw;
    auto a = f.h.connect(token("alice", session_a));
    auto b = f.h.connect(token("bob", session_b));
    CHECK(gw.group_size("lobby") == 0);
    REQUIRE_FALSE(gw.join_group(session_a, "lobby"));
    REQUIRE_FALSE(gw.join_group(session_b, "lobby"));
    CHECK(gw.group_size("lobby") == 2);
    b->close(1000);
    f.h.run_until([&] { return gw.group_size("lobby") == 1; });
    CHECK(gw.group_members("lobby") == std::vector<std::string>{session_a});
}
