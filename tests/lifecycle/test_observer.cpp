// Lifecycle hooks (session_observer.hpp, issue 12 item 2) on the in-memory
// transport: the exact sequence of events per session for every way a
// session begins, parks, resumes and ends; nothing for upgrades that never
// attach; the observer thread (a blocking hook delays only the hooks after
// it, a throwing one is counted and logged, the bounded queue drops and
// counts); option validation.
#include "../server/reconnect_helpers.hpp"
#include "forwarding_store.hpp"
#include "recording_observer.hpp"

#include <gatehouse/auth/revocation.hpp>

#include <atomic>
#include <stdexcept>

using namespace gatehouse::test;
using p::response_code;
using ms = std::chrono::milliseconds;

namespace {

constexpr const char* session_c = "8b9619ff-8b86-4d11-b42d-00c04fc964bb";
constexpr const char* session_d = "9c9619ff-8b86-4d11-b42d-00c04fc964cc";

s::gateway_options parking_options() {
    auto o = default_options();
    o.reconnect_queue_max_bytes = 256 * 1024;
    o.reconnect_window = std::chrono::seconds(10);
    return o;
}

/// Log lines the gateway wrote (any thread).
struct captured_log {
    std::mutex mutex;
    std::vector<std::string> lines;
    bool contains(const std::string& needle) {
        std::lock_guard<std::mutex> lock(mutex);
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
    std::size_t count(const std::string& needle) {
        std::lock_guard<std::mutex> lock(mutex);
        std::size_t n = 0;
        for (const auto& l : lines)
            if (l.find(needle) != std::string::npos) ++n;
        return n;
    }
};

s::gateway_options observed_options(s::gateway_options o, const std::shared_ptr<recording_observer>& observer,
                                    const std::shared_ptr<captured_log>& log = nullptr) {
    o.observer = observer;
    if (log)
        o.log = [log](s::log_level, std::string_view line) {
            std::lock_guard<std::mutex> lock(log->mutex);
            log->lines.emplace_back(line);
        };
    return o;
}

/// A harness whose gateway reports to a recording_observer, with the
/// standard endpoints (/echo ...).
struct observed {
    explicit observed(s::gateway_options o = default_options(), std::shared_ptr<recording_observer> rec = nullptr)
        : obs(rec ? std::move(rec) : std::make_shared<recording_observer>()),
          log(std::make_shared<captured_log>()),
          h(observed_options(std::move(o), obs, log)) {
        add_standard_endpoints(h.gw, held);
    }

    /// Drives the io_context until the session has `n` events delivered.
    void wait(const std::string& session_id, std::size_t n, ms timeout = ms(5000)) {
        const bool ok = h.run_until([&] { return obs->count_of(session_id) >= n; }, timeout, false);
        CHECK_MESSAGE(ok, "expected " << n << " events for " << session_id << ", got: " << obs->trace(session_id));
    }
    /// Drives the io_context until every event posted so far was handed to the hooks.
    void drain(std::size_t total, ms timeout = ms(5000)) {
        const bool ok = h.run_until([&] { return h.gw.stats().observer_events >= total; }, timeout, false);
        CHECK_MESSAGE(ok, "expected " << total << " events delivered, got: " << obs->trace_all());
    }
    /// Lets the gateway run a little, so that an event that should not come would.
    void quiet(ms for_ = ms(60)) { h.settle(for_); }

    std::shared_ptr<recording_observer> obs;
    std::shared_ptr<captured_log> log;
    std::shared_ptr<held_calls> held = std::make_shared<held_calls>();
    harness h;
};

std::string echo_frame(const s::memory_client& c, std::uint64_t id) {
    return harness::request(harness::guid_of(c, "/echo"), "{}", p::message_flags::none, 0, 1, id);
}

/// A session_store over memory_session_store whose next `update` or
/// `consume_reconnect_token` can be held until the test releases it: a
/// reconnection whose attach is pending.
class held_store final : public forwarding_store {
public:
    held_store() : forwarding_store(std::make_shared<session::memory_session_store>()) {}
    void hold_next_update() { hold_update_.store(true); }
    void hold_next_consume() { hold_consume_.store(true); }
    bool holding() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return static_cast<bool>(pending_);
    }
    /// Runs the held operation against the real store now.
    void release() {
        std::function<void()> run;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            run = std::move(pending_);
            pending_ = nullptr;
        }
        if (run) run();
    }

    void update(session::session_record record, completion<session::session_record> done) override {
        if (hold_update_.exchange(false)) {
            std::lock_guard<std::mutex> lock(mutex_);
            pending_ = [inner = inner_, record = std::move(record), done = std::move(done)]() mutable {
                inner->update(std::move(record), std::move(done));
            };
            return;
        }
        inner_->update(std::move(record), std::move(done));
    }
    void consume_reconnect_token(std::string_view token, completion<session::session_record> done) override {
        if (hold_consume_.exchange(false)) {
            std::lock_guard<std::mutex> lock(mutex_);
            pending_ = [inner = inner_, token = std::string(token), done = std::move(done)]() mutable {
                inner->consume_reconnect_token(token, std::move(done));
            };
            return;
        }
        inner_->consume_reconnect_token(token, std::move(done));
    }

private:
    std::atomic<bool> hold_update_{false};
    std::atomic<bool> hold_consume_{false};
    mutable std::mutex mutex_;
    std::function<void()> pending_;
};

/// The harness's driving loop around a gateway on a held_store.
struct held_store_fixture {
    explicit held_store_fixture(s::gateway_options o)
        : obs(std::make_shared<recording_observer>()),
          validator(std::make_shared<scripted_validator>()),
          store(std::make_shared<held_store>()),
          gw(observed_options(std::move(o), obs), validator, store),
          transport(io, gw.transport_side()) {}
    ~held_store_fixture() {
        store->release();
        for (auto& c : clients)
            if (!c->closed()) c->close();
        run_until([&] {
            for (auto& c : clients)
                if (!c->closed()) return false;
            return true;
        }, ms(2000), false);
    }

    bool run_until(const std::function<bool()>& done, ms timeout = ms(5000), bool require = true) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) {
                if (require) FAIL_CHECK("condition not reached in time");
                return false;
            }
            if (io.stopped()) io.restart();
            io.run_one_for(ms(5));
        }
        return true;
    }
    std::shared_ptr<s::memory_client> upgrade_with(const std::string& authorization) {
        s::memory_upgrade u;
        u.headers.push_back({"Authorization", authorization});
        auto c = transport.connect(std::move(u));
        clients.push_back(c);
        run_until([&] { return c->status() != 0; });
        return c;
    }
    std::shared_ptr<s::memory_client> connect(const std::string& authorization) {
        auto c = upgrade_with(authorization);
        REQUIRE(c->status() == 101);
        run_until([&] { return harness::manifest_of(*c).has_value() || c->closed(); });
        return c;
    }
    /// Lets queued work and `for_` of timers run (and late events show up).
    void settle(ms for_ = ms(100)) {
        const auto until = std::chrono::steady_clock::now() + for_;
        run_until([&] { return std::chrono::steady_clock::now() >= until; });
    }
    void wait(const std::string& session_id, std::size_t n) {
        const bool ok = run_until([&] { return obs->count_of(session_id) >= n; }, ms(5000), false);
        CHECK_MESSAGE(ok, "expected " << n << " events for " << session_id << ", got: " << obs->trace(session_id));
    }

    std::shared_ptr<recording_observer> obs;
    asio::io_context io;
    std::shared_ptr<scripted_validator> validator;
    std::shared_ptr<held_store> store;
    s::gateway gw;
    s::memory_transport transport;
    std::vector<std::shared_ptr<s::memory_client>> clients;
};

}  // namespace

// ---------------------------------------------------------------------------
// One lifetime, event by event

TEST_CASE("observer: a new session closed 1000 by its client: opened(created), then closed(client_closed, 1000)") {
    auto o = default_options();
    o.node_id = "node-7";
    observed f(o);
    auto c = f.h.connect(token("alice", session_a));
    f.wait(session_a, 1);
    c->close(1000);
    f.wait(session_a, 2);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(client_closed,1000)");
    const auto events = f.obs->events_of(session_a);
    REQUIRE(events.size() == 2);
    for (const auto& e : events) {
        CHECK(e.node_id == "node-7");
        CHECK(e.account_id == "alice");
    }
    CHECK(events[0].remote_address == "127.0.0.1");
    // One thread of the gateway's own, never the one driving the I/O.
    const auto threads = f.obs->threads();
    REQUIRE(threads.size() == 1);
    CHECK(threads[0] != std::this_thread::get_id());
    f.drain(2);
    const auto st = f.h.gw.stats();
    CHECK(st.observer_events == 2);
    CHECK(st.observer_events_dropped == 0);
    CHECK(st.observer_errors == 0);
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: the stored session of a token whose last lifetime ended opens again with created = false") {
    observed f;
    auto c = f.h.connect(token("alice", session_a));
    c->close(1000);
    f.wait(session_a, 2);
    auto again = f.h.connect(token("alice", session_a));
    f.wait(session_a, 3);
    again->close(1000);
    f.wait(session_a, 4);
    CHECK(f.obs->trace(session_a) ==
          "opened(created) closed(client_closed,1000) opened closed(client_closed,1000)");
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: a drop parks (dropped, until now + window); the same token within the window resumes") {
    auto o = parking_options();
    observed f(o);
    auto c = f.h.connect(token("alice", session_a));
    f.wait(session_a, 1);
    const auto before = std::chrono::system_clock::now();
    c->drop();
    f.wait(session_a, 2);
    const auto after = std::chrono::system_clock::now();
    CHECK(f.obs->trace(session_a) == "opened(created) parked(dropped,1006)");
    const auto parked = f.obs->events_of(session_a).at(1);
    CHECK(parked.parked_until >= before + o.reconnect_window);
    CHECK(parked.parked_until <= after + o.reconnect_window);

    auto back = f.h.connect(token("alice", session_a));
    CHECK(harness::manifest_of(*back)->at("reason") == "session_reconnected");
    f.wait(session_a, 3);
    const auto resumed = f.obs->events_of(session_a).at(2);
    CHECK(resumed.describe() == "resumed(after_park)");
    CHECK(resumed.remote_address == "127.0.0.1");
    back->close(1000);
    f.wait(session_a, 4);
    f.quiet();
    CHECK(f.obs->trace(session_a) ==
          "opened(created) parked(dropped,1006) resumed(after_park) closed(client_closed,1000)");
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: a client close other than 1000 parks (client_closed, its code)") {
    observed f(parking_options());
    auto c = f.h.connect(token("alice", session_a));
    c->close(1001);
    f.wait(session_a, 2);
    CHECK(f.obs->trace(session_a) == "opened(created) parked(client_closed,1001)");
}

TEST_CASE("observer: the window elapsing without a reconnection: closed(reconnect_window_elapsed, close code 0)") {
    auto o = parking_options();
    o.reconnect_window = ms(300);
    observed f(o);
    auto c = f.h.connect(token("alice", session_a));
    c->drop();
    f.wait(session_a, 2);
    CHECK(f.obs->trace(session_a) == "opened(created) parked(dropped,1006)");
    f.wait(session_a, 3);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) parked(dropped,1006) closed(reconnect_window_elapsed,0)");
    CHECK(f.h.gw.stats().sessions_expired == 1);
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: a heartbeat timeout without parking: closed(heartbeat_timeout, 1006)") {
    auto o = default_options();
    o.ping_interval = ms(50);
    o.pong_timeout = ms(100);
    observed f(o);
    auto c = f.h.connect(token("alice", session_a));
    c->answer_pings(false);
    f.wait(session_a, 2);
    CHECK(f.obs->trace(session_a) == "opened(created) closed(heartbeat_timeout,1006)");
}

TEST_CASE("observer: a heartbeat timeout with parking: parked(heartbeat_timeout, 1006)") {
    auto o = parking_options();
    o.ping_interval = ms(50);
    o.pong_timeout = ms(100);
    observed f(o);
    auto c = f.h.connect(token("alice", session_a));
    c->answer_pings(false);
    f.wait(session_a, 2);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) parked(heartbeat_timeout,1006)");
}

TEST_CASE("observer: a second connection of a live session: resumed(takeover); the old connection reports nothing") {
    observed f(parking_options());  // the replaced socket must not park either
    auto first = f.h.connect(token("alice", session_a));
    f.wait(session_a, 1);
    auto second = f.h.connect(token("alice", session_a));
    f.h.run_until([&] { return first->closed(); });
    CHECK(first->server_close_code() == 4002);
    f.wait(session_a, 2);
    f.quiet(ms(100));
    CHECK(f.obs->trace(session_a) == "opened(created) resumed(takeover)");
    CHECK(f.h.gw.stats().parked_sessions == 0);
    second->close(1000);
    f.wait(session_a, 3);
    CHECK(f.obs->trace(session_a) == "opened(created) resumed(takeover) closed(client_closed,1000)");
    CHECK(f.obs->lifetime_violations() == "");
}

// ---------------------------------------------------------------------------
// Server-side ends

TEST_CASE("observer: kicked by gateway::disconnect with 4002: closed(kicked, 4002)") {
    observed f(parking_options());
    auto c = f.h.connect(token("alice", session_a));
    CHECK_FALSE(f.h.gw.disconnect(session_a, 4002, "kicked"));
    f.h.run_until([&] { return c->closed(); });
    f.wait(session_a, 2);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(kicked,4002)");
}

TEST_CASE("observer: kicked with a reconnectable 4000: parked(kicked, 4000), its token resumes, a kick while parked closes") {
    observed f(parking_options());
    auto c = f.h.connect(token("alice", session_a));
    CHECK_FALSE(f.h.gw.disconnect(session_a, 4000, "come back later"));
    f.h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 4000);
    f.wait(session_a, 2);
    CHECK(f.obs->trace(session_a) == "opened(created) parked(kicked,4000)");
    const auto reconnection = reconnection_token_of(*c);
    REQUIRE(session::is_reconnect_token(reconnection));
    auto back = reconnect_with(f.h, reconnection);
    REQUIRE(harness::manifest_of(*back).has_value());
    f.wait(session_a, 3);
    // Dropped again, then forgotten by the host while parked.
    back->drop();
    f.wait(session_a, 4);
    CHECK_FALSE(f.h.gw.disconnect(session_a, 4002, "gone"));
    f.wait(session_a, 5);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) parked(kicked,4000) resumed(after_park) parked(dropped,1006) "
                                     "closed(kicked,0)");
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: revoke_session and revoke_account: closed(revoked, 4002), also while parked (close code 0)") {
    observed f(parking_options());
    auto a = f.h.connect(token("alice", session_a));
    auto b = f.h.connect(token("bob", session_b));
    auto c = f.h.connect(token("bob", session_c));
    auto d = f.h.connect(token("dave", session_d));
    f.h.gw.revoke_session(session_a);
    f.wait(session_a, 2);
    f.h.gw.revoke_account("bob");
    f.wait(session_b, 2);
    f.wait(session_c, 2);
    d->drop();
    f.wait(session_d, 2);
    f.h.gw.revoke_session(session_d);
    f.wait(session_d, 3);
    f.quiet();
    CHECK(a->server_close_code() == 4002);
    CHECK(b->server_close_code() == 4002);
    CHECK(c->server_close_code() == 4002);
    CHECK(f.obs->trace(session_a) == "opened(created) closed(revoked,4002)");
    CHECK(f.obs->trace(session_b) == "opened(created) closed(revoked,4002)");
    CHECK(f.obs->trace(session_c) == "opened(created) closed(revoked,4002)");
    CHECK(f.obs->trace(session_d) == "opened(created) parked(dropped,1006) closed(revoked,0)");
    CHECK(f.h.gw.stats().parked_sessions == 0);
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: watch_revocations: a revocation in the list closes with closed(revoked, 4002)") {
    observed f(parking_options());
    auto list = std::make_shared<auth::memory_revocation_list>();
    f.h.gw.watch_revocations(list);
    auto a = f.h.connect(token("alice", session_a));
    auto b = f.h.connect(token("bob", session_b));
    auth::revocation by_account;
    by_account.scope = auth::revocation_scope::account;
    by_account.value = "alice";
    CHECK_FALSE(list->revoke(by_account));
    f.wait(session_a, 2);
    auth::revocation by_token;
    by_token.scope = auth::revocation_scope::token;
    by_token.value = std::string("jti-") + session_b;
    CHECK_FALSE(list->revoke(by_token));
    f.wait(session_b, 2);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(revoked,4002)");
    CHECK(f.obs->trace(session_b) == "opened(created) closed(revoked,4002)");
    f.h.gw.watch_revocations(nullptr);
}

TEST_CASE("observer: an access token expiring while connected: closed(token_expired, 4001)") {
    observed f(parking_options());  // 4001 is not reconnectable: no park
    auto c = f.h.connect(token("alice", session_a, "", "", "sync", 150));
    f.h.run_until([&] { return c->closed(); });
    CHECK(c->server_close_code() == 4001);
    f.wait(session_a, 2);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(token_expired,4001)");
}

TEST_CASE("observer: stop() closes live and parked sessions with closed(node_stopping)") {
    observed f(parking_options());
    auto live = f.h.connect(token("alice", session_a));
    auto away = f.h.connect(token("bob", session_b));
    away->drop();
    f.wait(session_b, 2);
    CHECK(f.obs->trace(session_b) == "opened(created) parked(dropped,1006)");
    f.h.gw.stop();
    f.h.run_until([&] { return live->closed(); });
    CHECK(live->server_close_code() == 1001);
    f.wait(session_a, 2);
    f.wait(session_b, 3);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(node_stopping,1001)");
    CHECK(f.obs->trace(session_b) == "opened(created) parked(dropped,1006) closed(node_stopping,0)");
    CHECK(f.h.gw.stats().parked_sessions == 0);
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: a slow consumer closed 4005: closed(slow_consumer, 4005)") {
    auto o = default_options();
    o.max_message_size = 4096;
    o.max_send_queue_bytes = 16 * 1024;
    observed f(o);
    auto slow = f.h.connect(token("alice", session_a));
    auto fast = f.h.connect(token("bob", session_b));
    slow->stall_reading(true);
    const nlohmann::json body = {{"blob", std::string(3000, 'x')}};
    for (int i = 0; i < 10; ++i) f.h.gw.push_to_all("bulk.data", body);
    f.h.run_until([&] { return slow->closed(); });
    CHECK(slow->server_close_code() == 4005);
    f.wait(session_a, 2);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(slow_consumer,4005)");
    CHECK(f.obs->trace(session_b) == "opened(created)");
}

TEST_CASE("observer: replace_oldest with one session per account: the old one closed(replaced, 4002)") {
    auto o = parking_options();
    o.max_sessions_per_account = 1;
    o.account_session_policy = s::gateway_options::session_policy::replace_oldest;
    observed f(o);
    auto old_one = f.h.connect(token("alice", session_a));
    f.wait(session_a, 1);
    auto new_one = f.h.connect(token("alice", session_b));
    f.h.run_until([&] { return old_one->closed(); });
    CHECK(old_one->server_close_code() == 4002);
    CHECK(old_one->server_close_reason() == "replaced by a newer session");
    CHECK_FALSE(new_one->closed());
    f.wait(session_a, 2);
    f.wait(session_b, 1);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) closed(replaced,4002)");
    CHECK(f.obs->trace(session_b) == "opened(created)");
    CHECK(f.h.gw.stats().parked_sessions == 0);
    CHECK(f.obs->lifetime_violations() == "");
}

// ---------------------------------------------------------------------------
// Nothing for upgrades that never attach; races around parking

TEST_CASE("observer: upgrades that never attach report nothing") {
    observed f(parking_options());
    // Refused at the upgrade.
    CHECK(f.h.upgrade_with("Bearer bad|x")->status() == 401);
    // The socket ends between the 101 and the open.
    s::memory_upgrade u;
    u.headers.push_back({"Authorization", "Bearer " + token("alice", session_a)});
    u.fail_before_open = true;
    auto failed = f.h.upgrade(u);
    CHECK(failed->status() == 101);
    f.h.run_until([&] { return failed->closed(); });
    // An asynchronous validator still working when the client drops.
    auto gone = f.h.upgrade_with("Bearer " + token("bob", session_b, "", "", "async"));
    CHECK(gone->status() == 101);
    gone->drop();
    // An asynchronous validation that fails (4001 after the 101).
    auto refused = f.h.upgrade_with("Bearer badasync|x");
    f.h.run_until([&] { return refused->closed(); });
    CHECK(refused->server_close_code() == 4001);
    f.h.run_until([&] { return f.h.validator->calls.load() >= 4; });
    f.quiet(ms(200));  // the validators answered (20 ms) and anything they caused ran
    CHECK(f.obs->trace_all() == "");
    CHECK(f.h.gw.stats().sessions == 0);
    CHECK(f.h.gw.stats().parked_sessions == 0);
    // The observer works: the next session reports.
    auto ok = f.h.connect(token("carol", session_c));
    f.wait(session_c, 1);
    f.quiet();
    CHECK(f.obs->trace_all() == std::string(session_c) + ":opened(created)");
    CHECK(f.h.gw.stats().observer_events == 1);
}

TEST_CASE("observer: a parked session's client comes back (new socket, same token): resumed, no closed") {
    observed f(parking_options());
    auto c = f.h.connect(token("alice", session_a));
    REQUIRE_FALSE(f.h.gw.join_group(session_a, "room"));
    c->drop();
    f.wait(session_a, 2);
    CHECK(f.h.gw.push_to_group("room", "while.away") == 1);
    auto back = f.h.connect(token("alice", session_a));
    f.h.run_until([&] { return event_names(*back).size() == 1; });
    f.wait(session_a, 3);
    // Twice more: each absence is one park, each return one resume.
    for (int i = 0; i < 2; ++i) {
        back->drop();
        f.wait(session_a, 4 + 2 * static_cast<std::size_t>(i));
        back = f.h.connect(token("alice", session_a));
        f.wait(session_a, 5 + 2 * static_cast<std::size_t>(i));
    }
    f.quiet();
    CHECK(f.obs->trace(session_a) == "opened(created) parked(dropped,1006) resumed(after_park) parked(dropped,1006) "
                                     "resumed(after_park) parked(dropped,1006) resumed(after_park)");
    CHECK(f.h.gw.group_members("room") == std::vector<std::string>{session_a});
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: the window elapsing while a reconnection's attach is pending stays consistent") {
    // The same bearer token: the store's update (the attach) is held past
    // the window.
    auto o = parking_options();
    o.reconnect_window = ms(300);
    held_store_fixture f(o);
    auto c = f.connect("Bearer " + token("alice", session_a));
    c->drop();
    f.wait(session_a, 2);
    f.store->hold_next_update();
    auto back = f.upgrade_with("Bearer " + token("alice", session_a));
    REQUIRE(back->status() == 101);
    f.run_until([&] { return f.store->holding(); });
    // The window passes while the reconnection waits for its store.
    f.wait(session_a, 3);
    f.store->release();
    f.run_until([&] { return harness::manifest_of(*back).has_value() || back->closed(); });
    f.run_until([&] { return f.obs->count_of(session_a) >= 4; }, ms(2000), false);
    f.settle();
    const auto trace = f.obs->trace(session_a);
    INFO("trace: " << trace);
    // Either it resumed in time, or its lifetime ended and a new one opened;
    // never two closes.
    const bool resumed = trace == "opened(created) parked(dropped,1006) resumed(after_park)";
    const bool reopened = trace == "opened(created) parked(dropped,1006) closed(reconnect_window_elapsed,0) opened";
    CHECK((resumed || reopened));
    CHECK(f.obs->lifetime_violations() == "");
    if (!back->closed()) {
        back->close(1000);
        f.wait(session_a, resumed ? 4 : 5);
        CHECK(f.obs->lifetime_violations() == "");
    }
}

TEST_CASE("observer: the window elapsing while a Reconnect token is being consumed stays consistent") {
    auto o = parking_options();
    o.reconnect_window = ms(300);
    held_store_fixture f(o);
    auto c = f.connect("Bearer " + token("alice", session_a));
    CHECK_FALSE(f.gw.disconnect(session_a, 4000, "come back"));
    f.run_until([&] { return c->closed(); });
    f.wait(session_a, 2);
    const auto reconnection = reconnection_token_of(*c);
    REQUIRE(session::is_reconnect_token(reconnection));
    f.store->hold_next_consume();
    auto back = f.upgrade_with("Reconnect " + reconnection);
    REQUIRE(back->status() == 101);
    f.run_until([&] { return f.store->holding(); });
    f.wait(session_a, 3);
    f.store->release();
    f.run_until([&] { return harness::manifest_of(*back).has_value() || back->closed(); });
    f.run_until([&] { return f.obs->count_of(session_a) >= 4; }, ms(2000), false);
    f.settle();
    const auto trace = f.obs->trace(session_a);
    INFO("trace: " << trace);
    const bool resumed = trace == "opened(created) parked(kicked,4000) resumed(after_park)";
    const bool reopened = trace == "opened(created) parked(kicked,4000) closed(reconnect_window_elapsed,0) opened";
    // The store may also refuse the token of a session whose lifetime ended
    // (4001): then nothing more is reported.
    const bool refused = trace == "opened(created) parked(kicked,4000) closed(reconnect_window_elapsed,0)" &&
                         back->closed();
    CHECK((resumed || reopened || refused));
    CHECK(f.obs->lifetime_violations() == "");
}

// ---------------------------------------------------------------------------
// The observer thread

TEST_CASE("observer: a hook that blocks for a second stalls no connection; later events keep their order") {
    auto rec = std::make_shared<recording_observer>();
    std::atomic<bool> sleeping{false};
    std::atomic<bool> woke{false};
    rec->before = [&](const recorded_event& e) {
        if (e.kind != lifecycle_kind::opened || e.account_id != "sleeper") return;
        sleeping = true;
        std::this_thread::sleep_for(std::chrono::seconds(1));
        woke = true;
    };
    observed f(default_options(), rec);
    auto bob = f.h.connect(token("bob", session_b));
    f.wait(session_b, 1);
    auto sleeper = f.h.connect(token("sleeper", session_a));
    f.h.run_until([&] { return sleeping.load(); });
    // While the hook sleeps: an established connection is answered at once,
    // and a new one gets its manifest.
    const auto start = std::chrono::steady_clock::now();
    const auto reply = f.h.call(*bob, echo_frame(*bob, 41), 41);
    const auto took = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - start);
    CHECK(reply.frame.code == response_code::ok);
    CHECK(took < ms(500));
    auto carol = f.h.connect(token("carol", session_c));
    REQUIRE(harness::manifest_of(*carol).has_value());
    CHECK_FALSE(woke.load());  // all of the above happened during the hook's sleep
    bob->close(1000);
    f.h.run_until([&] { return bob->closed(); });
    CHECK_FALSE(woke.load());
    // Everything arrives after the sleep, in order.
    f.wait(session_b, 2, ms(8000));
    f.wait(session_c, 1);
    sleeper->close(1000);
    f.wait(session_a, 2);
    f.quiet();
    const std::string a = session_a, b = session_b, c = session_c;
    CHECK(f.obs->trace_all() == b + ":opened(created) " + a + ":opened(created) " + c + ":opened(created) " + b +
                                    ":closed(client_closed,1000) " + a + ":closed(client_closed,1000)");
    CHECK(f.obs->lifetime_violations() == "");
}

TEST_CASE("observer: a hook that throws is caught, counted and logged; the next events are delivered") {
    auto rec = std::make_shared<recording_observer>();
    rec->before = [](const recorded_event& e) {
        if (e.kind == lifecycle_kind::opened && e.account_id == "thrower") throw std::runtime_error("hook failed on purpose");
        if (e.kind == lifecycle_kind::opened && e.account_id == "odd") throw 42;
    };
    observed f(default_options(), rec);
    auto t = f.h.connect(token("thrower", session_a));
    auto odd = f.h.connect(token("odd", session_c));
    auto bob = f.h.connect(token("bob", session_b));
    f.wait(session_b, 1);
    t->close(1000);
    odd->close(1000);
    f.wait(session_a, 1);  // its opened was not recorded (the hook threw first): only closed
    f.wait(session_c, 1);
    f.drain(5);
    f.quiet();
    CHECK(f.obs->trace(session_a) == "closed(client_closed,1000)");
    CHECK(f.obs->trace(session_c) == "closed(client_closed,1000)");
    CHECK(f.obs->trace(session_b) == "opened(created)");
    const auto st = f.h.gw.stats();
    CHECK(st.observer_errors == 2);
    CHECK(st.observer_events == 5);
    CHECK(st.observer_events_dropped == 0);
    CHECK(f.log->contains("hook failed on purpose"));
    CHECK(f.log->contains("non-standard exception"));
}

TEST_CASE("observer: a blocked hook and a tiny observer_queue_limit: events beyond it are dropped and counted") {
    auto rec = std::make_shared<recording_observer>();
    auto gate = std::make_shared<hook_gate>();
    rec->before = [gate](const recorded_event& e) {
        if (e.kind == lifecycle_kind::opened && e.account_id == "blocker") gate->wait();
    };
    auto o = default_options();
    o.observer_queue_limit = 1;
    observed f(o, rec);
    struct opener {
        std::shared_ptr<hook_gate> g;
        ~opener() { g->open(); }  // never leave the observer thread blocked
    } open_at_exit{gate};
    auto blocker = f.h.connect(token("blocker", session_a));
    f.h.run_until([&] { return gate->waiting() >= 1; });
    // One event waits in the queue; the next ones do not fit.
    auto b = f.h.connect(token("bob", session_b));
    auto c = f.h.connect(token("carol", session_c));
    auto d = f.h.connect(token("dave", session_d));
    f.h.run_until([&] { return f.h.gw.stats().observer_events_dropped >= 2; });
    CHECK(f.h.gw.stats().observer_events_dropped == 2);
    CHECK(f.h.gw.stats().observer_events == 0);
    CHECK(f.log->count("event queue full") == 1);
    // The sessions themselves are served.
    CHECK(f.h.call(*d, echo_frame(*d, 9), 9).frame.code == response_code::ok);
    gate->open();
    f.drain(2);
    CHECK(f.obs->trace_all() == std::string(session_a) + ":opened(created) " + session_b + ":opened(created)");
    // With the hook free again, nothing more is lost.
    for (auto* client : {&blocker, &b, &c, &d}) {
        const auto expected = f.h.gw.stats().observer_events + 1;
        (*client)->close(1000);
        f.h.run_until([&] { return (*client)->closed(); });
        f.drain(expected);
    }
    f.drain(6);
    const auto st = f.h.gw.stats();
    CHECK(st.observer_events == 6);
    CHECK(st.observer_events_dropped == 2);
    CHECK(f.obs->trace(session_c) == "closed(client_closed,1000)");
    CHECK(f.obs->trace(session_d) == "closed(client_closed,1000)");
}

TEST_CASE("observer: a hook may call the gateway (push to the session that just opened)") {
    auto rec = std::make_shared<recording_observer>();
    std::atomic<s::gateway*> gw{nullptr};
    rec->after = [&gw](const recorded_event& e) {
        if (e.kind == lifecycle_kind::opened)
            if (auto* g = gw.load()) (void)g->push_to_session(e.session_id, "welcome", {{"account", e.account_id}});
    };
    observed f(default_options(), rec);
    gw = &f.h.gw;
    auto c = f.h.connect(token("alice", session_a));
    f.h.run_until([&] { return event_names(*c).size() == 1; });
    CHECK(event_names(*c) == std::vector<std::string>{"welcome"});
    c->close(1000);
    f.wait(session_a, 2);
    gw = nullptr;
}

TEST_CASE("observer: observer_queue_limit is validated when an observer is set") {
    auto o = default_options();
    o.observer = std::make_shared<recording_observer>();
    auto validator = std::make_shared<scripted_validator>();
    auto store = std::make_shared<session::memory_session_store>();
    const auto message_for = [&](std::size_t limit) -> std::string {
        auto bad = o;
        bad.observer_queue_limit = limit;
        try {
            s::gateway gw(bad, validator, store);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    CHECK(message_for(0).find("observer_queue_limit") != std::string::npos);
    CHECK(message_for((std::size_t{1} << 24) + 1).find("observer_queue_limit") != std::string::npos);
    CHECK(message_for(1) == "");
    CHECK(message_for(std::size_t{1} << 24) == "");
    // Without an observer the limit is not used.
    auto none = default_options();
    none.observer_queue_limit = 0;
    CHECK_NOTHROW(s::gateway(none, validator, store));
}
