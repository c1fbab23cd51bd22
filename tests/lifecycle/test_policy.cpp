// Login policy per account and the abuse limits (issue 12, items 4 and 5),
// on the in-memory transport: replace_oldest, the per-address connection
// cap, the per-account message rate shared by an account's sessions, and
// the start-up checks of their options.
#include "../server/harness.hpp"

using namespace gatehouse::test;

namespace {
using ms = std::chrono::milliseconds;
inline constexpr const char* session_c = "8b9619ff-8b86-4d11-b42d-00c04fc964cc";

std::shared_ptr<s::memory_client> upgrade_from(harness& h, const std::string& address, const std::string& bearer) {
    s::memory_upgrade u;
    u.remote_address = address;
    u.headers.push_back({"Authorization", "Bearer " + bearer});
    return h.upgrade(std::move(u));
}

/// Sends `n` echo requests at once and returns their response codes.
std::vector<p::response_code> burst(harness& h, s::memory_client& c, int n, std::uint64_t first_id) {
    const auto echo = harness::guid_of(c, "/echo");
    const auto before = harness::responses(c).size();
    for (int i = 0; i < n; ++i)
        c.send_binary(p::bytes_view(harness::request(echo, "{}", p::message_flags::none, 0, 1, first_id + i)));
    h.run_until([&] { return harness::responses(c).size() >= before + static_cast<std::size_t>(n); });
    std::vector<p::response_code> codes;
    const auto all = harness::responses(c);
    for (std::size_t i = before; i < all.size(); ++i) codes.push_back(all[i].frame.code);
    return codes;
}

std::size_t count_of(const std::vector<p::response_code>& codes, p::response_code code) {
    return static_cast<std::size_t>(std::count(codes.begin(), codes.end(), code));
}
}  // namespace

TEST_CASE("login policy: refuse_newest (the default) refuses a session past the account's cap") {
    auto o = default_options();
    o.max_sessions_per_account = 1;
    standard_fixture f(o);
    auto first = f.h.connect(token("alice", session_a));
    auto second = f.h.upgrade_with("Bearer " + token("alice", session_b));
    CHECK(second->status() == 503);
    CHECK_FALSE(first->closed());
}

TEST_CASE("login policy: replace_oldest closes the oldest session with 4002 and attaches the newcomer") {
    auto o = default_options();
    o.max_sessions_per_account = 2;
    o.account_session_policy = s::gateway_options::session_policy::replace_oldest;
    standard_fixture f(o);
    auto oldest = f.h.connect(token("alice", session_a));
    f.h.settle(ms(5));  // created_at orders them
    auto middle = f.h.connect(token("alice", session_b));
    f.h.settle(ms(5));
    auto other_account = f.h.connect(token("bob", session_c));
    auto newest = f.h.connect(token("alice", "9c9619ff-8b86-4d11-b42d-00c04fc964dd"));
    REQUIRE(newest->status() == 101);
    f.h.run_until([&] { return oldest->closed(); });
    CHECK(oldest->server_close_code() == 4002);
    CHECK(oldest->server_close_reason() == "replaced by a newer session");
    const auto events = harness::events(*oldest);
    REQUIRE_FALSE(events.empty());
    CHECK(events.back().value("eventName", "") == "connect.disconnect-notification");
    CHECK(events.back().value("reason", "") == "kicked");
    f.h.settle();
    CHECK_FALSE(middle->closed());
    CHECK_FALSE(newest->closed());
    CHECK_FALSE(other_account->closed());
    CHECK(f.h.gw.local_sessions("alice").size() == 2);

    // A new socket of a live session replaces its socket, not another session.
    auto again = f.h.connect(token("alice", session_b));
    f.h.run_until([&] { return middle->closed(); });
    f.h.settle();
    CHECK_FALSE(newest->closed());
    CHECK_FALSE(again->closed());
}

TEST_CASE("abuse limits: connections per source address are capped at the upgrade with 429") {
    auto o = default_options();
    o.max_connections_per_address = 2;
    o.limit_loopback_addresses = true;
    auto metrics = std::make_shared<s::prometheus_metrics>();
    o.metrics = metrics;
    standard_fixture f(o);
    auto a = upgrade_from(f.h, "10.1.2.3", token("alice", session_a));
    auto b = upgrade_from(f.h, "10.1.2.3", token("bob", session_b));
    auto refused = upgrade_from(f.h, "10.1.2.3", token("carol", session_c));
    auto elsewhere = upgrade_from(f.h, "10.9.9.9", token("carol", session_c));
    CHECK(a->status() == 101);
    CHECK(b->status() == 101);
    CHECK(refused->status() == 429);
    CHECK(refused->body() == "Too many connections from this address");
    CHECK(elsewhere->status() == 101);
    std::string text;
    REQUIRE(f.h.gw.metrics_exposition(text));
    CHECK(text.find("gatehouse_upgrades_total{result=\"address_limit\",status=\"429\"} 1") != std::string::npos);
    // A slot frees when a connection of that address ends.
    a->close();
    f.h.run_until([&] { return a->closed(); });
    f.h.settle();
    auto later = upgrade_from(f.h, "10.1.2.3", token("dave", "ad9619ff-8b86-4d11-b42d-00c04fc964ee"));
    CHECK(later->status() == 101);

    SUBCASE("loopback peers are exempt unless limited") {
        auto lo = default_options();
        lo.max_connections_per_address = 1;
        standard_fixture g(lo);
        auto x = upgrade_from(g.h, "127.0.0.1", token("alice", session_a));
        auto y = upgrade_from(g.h, "127.0.0.1", token("bob", session_b));
        CHECK(x->status() == 101);
        CHECK(y->status() == 101);
    }
}

TEST_CASE("abuse limits: one account's sessions share a message rate limit, answered 12") {
    auto o = default_options();
    o.messages_per_minute = 1;  // no refill during the test
    o.message_burst = 6;
    o.account_messages_per_minute = 1;
    o.account_message_burst = 8;
    standard_fixture f(o);
    auto one = f.h.connect(token("alice", session_a));
    auto two = f.h.connect(token("alice", session_b));
    auto other = f.h.connect(token("bob", session_c));
    const auto first = burst(f.h, *one, 6, 100);  // its own limit: all 6 pass
    CHECK(count_of(first, p::response_code::ok) == 6);
    const auto second = burst(f.h, *two, 6, 200);  // the account has 2 left
    CHECK(count_of(second, p::response_code::ok) == 2);
    CHECK(count_of(second, p::response_code::too_many_requests) == 4);
    CHECK(f.h.gw.stats().account_rate_limited == 4);
    const auto unrelated = burst(f.h, *other, 6, 300);  // another account is not affected
    CHECK(count_of(unrelated, p::response_code::ok) == 6);
    // Meta requests are not counted (§8.2).
    const auto echo = harness::guid_of(*two, "/echo");
    const auto meta = f.h.call(*two, harness::request(echo, "", p::message_flags::meta, 0, 1, 900), 900);
    CHECK(meta.frame.code == p::response_code::ok);
}

TEST_CASE("abuse limits: an account alone is held by its connection's bucket; the shared one from its second on") {
    auto o = default_options();
    o.messages_per_minute = 1;  // no refill during the test
    o.message_burst = 6;
    o.account_messages_per_minute = 1;
    o.account_message_burst = 8;
    standard_fixture f(o);
    auto one = f.h.connect(token("alice", session_a));
    const auto alone = burst(f.h, *one, 8, 100);  // its own bucket: 6 pass, 2 refused
    CHECK(count_of(alone, p::response_code::ok) == 6);
    CHECK(count_of(alone, p::response_code::too_many_requests) == 2);
    CHECK(f.h.gw.stats().account_rate_limited == 0);
    auto two = f.h.connect(token("alice", session_b));
    const auto second = burst(f.h, *two, 6, 200);  // the account's bucket, untouched while alone: 8 -> 2
    CHECK(count_of(second, p::response_code::ok) == 6);
    auto three = f.h.connect(token("alice", session_c));
    const auto third = burst(f.h, *three, 6, 300);
    CHECK(count_of(third, p::response_code::ok) == 2);
    CHECK(count_of(third, p::response_code::too_many_requests) == 4);
    CHECK(f.h.gw.stats().account_rate_limited == 4);
    // message_burst + account_message_burst in all, as options.hpp says.
    CHECK(count_of(alone, p::response_code::ok) + count_of(second, p::response_code::ok) +
              count_of(third, p::response_code::ok) ==
          o.message_burst + o.account_message_burst);
}

TEST_CASE("policy and limit options are checked at start-up") {
    auto validator = std::make_shared<scripted_validator>();
    auto store = std::make_shared<session::memory_session_store>();
    const auto rejects = [&](const std::function<void(s::gateway_options&)>& change, const char* why) {
        auto o = default_options();
        change(o);
        CHECK_THROWS_WITH_AS(s::gateway(o, validator, store), doctest::Contains(why), std::invalid_argument);
    };
    rejects([](auto& o) { o.max_connections_per_address = 0; }, "max_connections_per_address must be at least 1");
    rejects([](auto& o) { o.account_messages_per_minute = o.messages_per_minute - 1; },
            "account_messages_per_minute must be at least messages_per_minute");
    rejects([](auto& o) { o.account_message_burst = 0; }, "account_message_burst must be at least message_burst");
    rejects([](auto& o) { o.account_session_policy = static_cast<s::gateway_options::session_policy>(7); },
            "account_session_policy");
    rejects([](auto& o) { o.max_presence_results = 0; }, "max_presence_results");
    rejects([](auto& o) { o.session_refresh_interval = std::chrono::hours(25); }, "session_refresh_interval");
}
