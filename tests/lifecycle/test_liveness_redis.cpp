// Liveness with a real Redis (issue 12): one gateway on real sockets with
// adapters::redis::redis_session_store and short store timeouts. A connected
// session, busy or silent, is refreshed in Redis (touch) and never expires
// by idleness; a record nobody refreshes does. A reconnectable close hands
// out a reconnection token that works; Redis dying under a live connection
// makes refreshes fail (counted) without closing it, and they succeed again
// once Redis is back; the store's max_lifetime closes with 4001 "max
// lifetime reached".
#include "redis_support.hpp"

using namespace gatehouse::test;
using namespace gatehouse::test::redis_lifecycle;

namespace {

const std::string busy_session = "a1111111-1111-4111-8111-111111111111";
const std::string silent_session = "a2222222-2222-4222-8222-222222222222";
const std::string unrefreshed_session = "a3333333-3333-4333-8333-333333333333";
const std::string parked_session = "a4444444-4444-4444-8444-444444444444";
const std::string outage_session = "a5555555-5555-4555-8555-555555555555";
const std::string lifetime_session = "a6666666-6666-4666-8666-666666666666";

constexpr ms idle_timeout{400};

/// A redis-server, the store over it (its own I/O thread) and one gateway.
struct redis_gateway {
    explicit redis_gateway(s::gateway_options options, rd::redis_session_store_options (*make_store)(int),
                           bool append_only = false)
        : server(redis_server::options{append_only, "redis-server"}) {
        store = std::make_shared<rd::redis_session_store>(runner.executor(), make_store(server.port()));
        node = std::make_unique<observed_node>(std::move(options), store);
    }
    ~redis_gateway() {
        node.reset();
        store->close();
    }
    redis_server server;
    io_runner runner;
    std::shared_ptr<rd::redis_session_store> store;
    std::unique_ptr<observed_node> node;
};

rd::redis_session_store_options short_idle(int port) { return store_options(port, idle_timeout); }

}  // namespace

TEST_CASE("liveness over Redis: connected sessions, busy or silent, outlive 3 x idle_timeout; others expire") {
    redis_gateway r(socket_options(), short_idle);
    auto& gw = *r.node->gw;
    REQUIRE(r.store->timing().idle_timeout == idle_timeout);

    // Control: a record nobody touches is gone after idle_timeout.
    {
        session::session_record record;
        record.session_id = unrefreshed_session;
        record.account_id = "nobody";
        std::promise<std::error_code> created;
        r.store->create(record, [&](std::error_code ec, session::session_record) { created.set_value(ec); });
        REQUIRE_FALSE(created.get_future().get());
    }

    // A client calling /echo every 100 ms for 3 x idle_timeout.
    auto busy = r.node->connect("ann", busy_session);
    const auto busy_start = clock_type::now();
    std::uint64_t id = 1;
    std::size_t answered = 0;
    while (clock_type::now() - busy_start < 3 * idle_timeout) {
        if (echo(*busy, id)) ++answered;
        ++id;
        std::this_thread::sleep_for(ms(100));
    }
    CHECK(answered == id - 1);
    // One session refreshed every idle_timeout / 4 = 100 ms for 1.2 s: about
    // 12; activity itself does not refresh (nor stop the refreshes).
    const auto busy_refreshes = gw.stats().session_refreshes;
    const auto busy_elapsed = std::chrono::duration_cast<ms>(clock_type::now() - busy_start);
    CHECK_MESSAGE((busy_refreshes >= 6 && busy_refreshes <= 20), busy_refreshes);
    MESSAGE("liveness: " << busy_refreshes << " refreshes of 1 busy session (/echo every 100 ms) in "
                         << busy_elapsed.count() << " ms: "
                         << static_cast<double>(busy_refreshes) * 3600000.0 / static_cast<double>(busy_elapsed.count())
                         << " per session per hour");
    CHECK_FALSE(load_session(*r.store, busy_session));
    CHECK(load_session(*r.store, unrefreshed_session) != std::error_code{});

    // A second connection that says nothing for 3 x idle_timeout (no pings:
    // socket_options has ping_interval 0); the busy one is silent too now.
    auto silent = r.node->connect("ben", silent_session);
    const auto refreshes_before = gw.stats().session_refreshes;
    const auto silent_start = clock_type::now();
    std::this_thread::sleep_for(3 * idle_timeout);
    const auto refreshes = gw.stats().session_refreshes - refreshes_before;
    const auto elapsed = std::chrono::duration_cast<ms>(clock_type::now() - silent_start);
    session::session_record record;
    CHECK_FALSE(load_session(*r.store, silent_session, &record));
    CHECK(record.account_id == "ben");
    CHECK_FALSE(load_session(*r.store, busy_session));
    CHECK(gw.stats().session_refresh_failures == 0);
    CHECK(gw.stats().sessions == 2);
    // Refresh interval idle_timeout / 4 = 100 ms: about 12 per session in
    // 1.2 s; at least a third of that on a loaded machine.
    CHECK(refreshes >= 2 * 4);

    const double per_session_per_hour =
        static_cast<double>(refreshes) / 2.0 * (3600000.0 / static_cast<double>(elapsed.count()));
    const auto default_interval = session::session_store_options{}.idle_timeout / 4;
    const auto default_per_hour = std::chrono::hours(1) / default_interval;
    MESSAGE("liveness: " << refreshes << " refreshes of 2 silent sessions in " << elapsed.count()
                         << " ms (idle_timeout " << idle_timeout.count() << " ms, interval "
                         << (idle_timeout / 4).count() << " ms): " << per_session_per_hour
                         << " refreshes per session per hour; with the default idle_timeout of "
                         << std::chrono::duration_cast<std::chrono::minutes>(session::session_store_options{}.idle_timeout)
                                .count()
                         << " min (interval " << std::chrono::duration_cast<std::chrono::seconds>(default_interval).count()
                         << " s): " << default_per_hour << " per session per hour");
    CHECK(default_per_hour == 8);

    // Both still answer; clean closes end both lifetimes.
    CHECK(echo(*silent, 1));
    CHECK(echo(*busy, id));
    CHECK(busy->close_cleanly());
    CHECK(silent->close_cleanly());
    CHECK(r.node->wait_events(busy_session, 2));
    CHECK(r.node->wait_events(silent_session, 2));
    CHECK(r.node->obs->trace(busy_session) == "opened(created) closed(client_closed,1000)");
    CHECK(r.node->obs->trace(silent_session) == "opened(created) closed(client_closed,1000)");
    CHECK(r.node->obs->lifetime_violations().empty());
}

TEST_CASE("liveness over Redis: a reconnectable close (4000) hands out a reconnection token that works") {
    redis_gateway r(parking_options(), short_idle);
    auto& gw = *r.node->gw;
    auto client = r.node->connect("cara", parked_session);
    REQUIRE(r.node->wait_events(parked_session, 1));

    REQUIRE_FALSE(gw.disconnect(parked_session, 4000, "maintenance"));
    const auto note = wait_event(*client, "connect.disconnect-notification");
    REQUIRE(note.has_value());
    CHECK(note->value("reconnectable", false));
    const std::string reconnection = note->value("reconnectionToken", "");
    REQUIRE(session::is_reconnect_token(reconnection));
    const auto closing = wait_close_frame(*client);
    REQUIRE(closing.has_value());
    CHECK(closing->close_code() == 4000);
    client->send(lg::ws_opcode::close, close_payload(4000));
    client.reset();
    REQUIRE(eventually([&] { return gw.stats().parked_sessions == 1; }));
    CHECK(r.node->wait_events(parked_session, 2));

    // Parked past idle_timeout: the token holds the record for the window.
    std::this_thread::sleep_for(2 * idle_timeout);
    CHECK_FALSE(load_session(*r.store, parked_session));

    auto back = std::make_unique<ws_client>(r.node->port);
    REQUIRE(back->upgrade("Reconnect " + reconnection) == 101);
    const auto manifest = wait_event(*back, "connect.capability-manifest");
    REQUIRE(manifest.has_value());
    CHECK(manifest->value("sessionId", "") == parked_session);
    CHECK(manifest->value("reason", "") == "session_reconnected");
    CHECK(eventually([&] { return gw.stats().parked_sessions == 0 && gw.stats().sessions == 1; }));
    // The resumed connection is refreshed too: it outlives idle_timeout.
    std::this_thread::sleep_for(2 * idle_timeout);
    CHECK_FALSE(load_session(*r.store, parked_session));

    // The token was single use.
    auto again = std::make_unique<ws_client>(r.node->port);
    REQUIRE(again->upgrade("Reconnect " + reconnection) == 101);
    CHECK(again->read_close(ms(8000)) == std::optional<std::uint16_t>(4001));

    CHECK(r.node->wait_events(parked_session, 3));
    CHECK(r.node->obs->trace(parked_session) == "opened(created) parked(kicked,4000) resumed(after_park)");
    CHECK(r.node->obs->lifetime_violations().empty());
}

TEST_CASE("liveness over Redis: Redis dies under a live connection; refreshes fail (counted), the connection stays") {
    // Longer idle_timeout here (5 s) so that the record outlives the outage
    // (Redis keeps it through its append-only file), refreshed every 100 ms.
    auto options = socket_options();
    options.session_refresh_interval = ms(100);
    redis_gateway r(
        options, [](int port) { return store_options(port, ms(5000)); }, true);
    auto& gw = *r.node->gw;
    auto client = r.node->connect("dora", outage_session);
    REQUIRE(eventually([&] { return gw.stats().session_refreshes >= 2; }));
    CHECK(gw.stats().session_refresh_failures == 0);

    r.server.kill();
    const auto killed = clock_type::now();
    REQUIRE(eventually([&] { return gw.stats().session_refresh_failures >= 1; }));
    const auto first_failure = std::chrono::duration_cast<ms>(clock_type::now() - killed);
    // While Redis is down: the connection is open and served.
    for (std::uint64_t i = 1; i <= 3; ++i) CHECK(echo(*client, i));
    CHECK(gw.stats().sessions == 1);
    CHECK(gw.stats().connections == 1);
    // Retried (after min(1 s, interval)): more failures pile up.
    CHECK(eventually([&] { return gw.stats().session_refresh_failures >= 2; }));
    const auto failures_down = gw.stats().session_refresh_failures;

    r.server.restart();
    const auto refreshes_at_restart = gw.stats().session_refreshes;
    REQUIRE(eventually([&] { return gw.stats().session_refreshes >= refreshes_at_restart + 3; }));
    const auto failures_after = gw.stats().session_refresh_failures;
    // Refreshing again: no new failure in the next few intervals.
    std::this_thread::sleep_for(ms(500));
    CHECK(gw.stats().session_refresh_failures <= failures_after + 1);  // one in flight at the restart at most
    CHECK_FALSE(load_session(*r.store, outage_session));
    for (std::uint64_t i = 4; i <= 6; ++i) CHECK(echo(*client, i));
    MESSAGE("Redis outage: first refresh failure " << first_failure.count() << " ms after the kill; "
                                                   << failures_down << " failures while down, "
                                                   << gw.stats().session_refresh_failures << " in all");
    // Nothing happened to the session as far as the host can see.
    CHECK(r.node->obs->trace(outage_session) == "opened(created)");
    CHECK(client->close_cleanly());
    CHECK(r.node->wait_events(outage_session, 2));
    CHECK(r.node->obs->trace(outage_session) == "opened(created) closed(client_closed,1000)");
}

TEST_CASE("liveness over Redis: the store's max_lifetime (1 s) closes a refreshed session with 4001") {
    redis_gateway r(socket_options(), [](int port) { return store_options(port, idle_timeout, ms(1000)); });
    auto& gw = *r.node->gw;
    const auto started = clock_type::now();
    auto client = r.node->connect("eli", lifetime_session);
    // Busy all along: activity does not extend the lifetime.
    std::uint64_t id = 1;
    while (clock_type::now() - started < ms(600)) {
        CHECK(echo(*client, id++));
        std::this_thread::sleep_for(ms(50));
    }
    const auto closing = wait_close_frame(*client);
    const auto elapsed = std::chrono::duration_cast<ms>(clock_type::now() - started);
    REQUIRE(closing.has_value());
    CHECK(closing->close_code() == 4001);
    // The lifetime timer closes with "max lifetime reached". A refresh Redis
    // answers just after the record's TTL (created_at + max_lifetime) ran
    // out can win the race by a millisecond or two and close with 4001
    // "session expired" (observer reason max_lifetime as well).
    const auto close_text = closing->payload.substr(2);
    CHECK_MESSAGE((close_text == "max lifetime reached" || close_text == "session expired"), close_text);
    if (close_text != "max lifetime reached") MESSAGE("max_lifetime: the refresh won the race: " << close_text);
    CHECK(elapsed >= ms(900));
    bool notified = false;
    for (const auto& f : client->received) {
        const auto body = event_json(f);
        if (body.is_object() && body.value("eventName", "") == "connect.disconnect-notification") {
            notified = true;
            CHECK(body.value("reason", "") == "session_expired");
            CHECK_FALSE(body.value("reconnectable", true));
        }
    }
    CHECK(notified);
    client->send(lg::ws_opcode::close, close_payload(4001));
    CHECK(r.node->wait_events(lifetime_session, 2));
    CHECK(r.node->obs->trace(lifetime_session) == "opened(created) closed(max_lifetime,4001)");
    CHECK(eventually([&] { return gw.stats().sessions == 0; }));
    MESSAGE("max_lifetime 1000 ms: closed with 4001 after " << elapsed.count() << " ms");
}
