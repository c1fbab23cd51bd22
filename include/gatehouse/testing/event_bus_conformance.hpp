// Conformance kit for event_bus implementations: doctest test cases that
// check the contract of gatehouse/cluster/event_bus.hpp against any bus.
//
// Usage, in exactly one translation unit of a doctest test program:
//
//     #include <gatehouse/testing/event_bus_conformance.hpp>
//
//     struct my_bus_factory {
//         // A node joining this factory's cluster (a fresh cluster per
//         // factory object: each test case makes its own factory).
//         std::shared_ptr<gatehouse::cluster::event_bus> make(const std::string& node_id);
//         // Hands raw bytes to a node through the backend's targeted path,
//         // as if another node had sent them (malformed input, duplicates).
//         void inject(const std::string& node_id, const std::string& bytes);
//     };
//     TYPE_TO_STRING(my_bus_factory);  // optional: names the test cases
//     GATEHOUSE_EVENT_BUS_CONFORMANCE(my_bus_factory);
//
// Absence of a delivery is checked without sleeping: after the traffic under
// test, the publisher sends a "fence" on every path (to_node for targeted
// traffic, to_all for group traffic) and waits for each fence; a bus keeps
// the order of one publisher's messages per path, so anything that would
// have arrived has arrived by then.
#pragma once

#include <gatehouse/cluster/envelope.hpp>
#include <gatehouse/cluster/event_bus.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gatehouse::testing {

namespace bus_conformance {

using cluster::bus_message;
using cluster::cluster_errc;
using cluster::event_bus;
using cluster::interest_kind;
using cluster::message_kind;

/// How long the kit waits for a completion or a delivery before failing.
inline constexpr auto deadline = std::chrono::seconds(10);

struct received {
    message_kind kind{};
    std::string target, payload, origin;
    std::uint64_t message_id = 0;
};

/// Records what one node's handler receives; any thread. The handler shares
/// the record, so it may outlive the collector (a bus's handler call can
/// still be running when close() returns on another thread).
class collector {
public:
    event_bus::message_handler handler() {
        return [s = state_](const bus_message& m) {
            std::lock_guard lock(s->mutex);
            s->items.push_back({m.kind, std::string(m.target), std::string(m.payload), std::string(m.origin),
                                m.message_id});
            s->changed.notify_all();
        };
    }

    /// Waits until a message with `payload` has arrived.
    bool wait_for(const std::string& payload) {
        std::unique_lock lock(state_->mutex);
        return state_->changed.wait_for(lock, deadline, [&] { return count_locked(payload) > 0; });
    }

    std::size_t count(const std::string& payload) const {
        std::lock_guard lock(state_->mutex);
        return count_locked(payload);
    }

    /// Messages other than fences.
    std::vector<received> messages() const {
        std::lock_guard lock(state_->mutex);
        std::vector<received> out;
        for (const auto& r : state_->items)
            if (r.payload.rfind("fence-", 0) != 0) out.push_back(r);
        return out;
    }

private:
    struct state {
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<received> items;
    };

    std::size_t count_locked(const std::string& payload) const {
        return static_cast<std::size_t>(std::count_if(state_->items.begin(), state_->items.end(),
                                                      [&](const received& r) { return r.payload == payload; }));
    }

    std::shared_ptr<state> state_ = std::make_shared<state>();
};

template <class T>
T await_future(std::future<T>& f, const char* what) {
    if (f.wait_for(deadline) != std::future_status::ready) FAIL(what << ": completion not called within 10 s");
    return f.get();
}

inline std::error_code subscribe(event_bus& bus, collector& c) {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    bus.subscribe(c.handler(), [&p](std::error_code ec) { p.set_value(ec); });
    return await_future(f, "subscribe");
}

inline std::error_code declare(event_bus& bus, interest_kind kind, const std::string& name) {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    bus.declare_interest(kind, name, [&p](std::error_code ec) { p.set_value(ec); });
    return await_future(f, "declare_interest");
}

inline std::error_code withdraw(event_bus& bus, interest_kind kind, const std::string& name) {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    bus.withdraw_interest(kind, name, [&p](std::error_code ec) { p.set_value(ec); });
    return await_future(f, "withdraw_interest");
}

struct publish_result {
    std::error_code ec;
    std::size_t nodes = 0;
};

inline publish_result publish(event_bus& bus, message_kind kind, const std::string& target,
                              const std::string& payload) {
    std::promise<publish_result> p;
    auto f = p.get_future();
    bus.publish(kind, target, payload, [&p](std::error_code ec, std::size_t n) { p.set_value({ec, n}); });
    return await_future(f, "publish");
}

inline std::pair<std::error_code, bool> alive(event_bus& bus, const std::string& node) {
    std::promise<std::pair<std::error_code, bool>> p;
    auto f = p.get_future();
    bus.node_alive(node, [&p](std::error_code ec, bool a) { p.set_value({ec, a}); });
    return await_future(f, "node_alive");
}

/// One node of a test cluster: its bus and what it received.
struct node {
    std::string id;
    std::shared_ptr<event_bus> bus;
    std::unique_ptr<collector> inbox = std::make_unique<collector>();
};

template <class Factory>
node join(Factory& factory, const std::string& id) {
    node n{id, factory.make(id)};
    REQUIRE(n.bus);
    REQUIRE(n.bus->node_id() == id);
    REQUIRE_FALSE(subscribe(*n.bus, *n.inbox));
    return n;
}

/// After this, everything `from` published earlier to `to` has arrived.
inline void fence(node& from, std::initializer_list<node*> to) {
    static std::atomic<int> counter{0};
    for (node* n : to) {
        const auto targeted = "fence-t" + std::to_string(counter++);
        REQUIRE_FALSE(publish(*from.bus, message_kind::to_node, n->id, targeted).ec);
        REQUIRE(n->inbox->wait_for(targeted));
    }
    const auto broadcast = "fence-a" + std::to_string(counter++);
    REQUIRE_FALSE(publish(*from.bus, message_kind::to_all, "", broadcast).ec);
    for (node* n : to) REQUIRE(n->inbox->wait_for(broadcast));
}

/// Polls `condition` (every 10 ms, up to the deadline) for effects that a
/// bus makes prompt but not synchronous.
template <class Condition>
bool eventually(Condition&& condition) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

inline std::string valid_envelope(message_kind kind, const std::string& target, const std::string& payload,
                                  const std::string& origin = "injector", std::uint64_t id = 42) {
    std::string out;
    REQUIRE_FALSE(cluster::encode_envelope({kind, id, origin, target, payload}, out));
    return out;
}

}  // namespace bus_conformance

}  // namespace gatehouse::testing

#define GATEHOUSE_EVENT_BUS_CONFORMANCE(Factory)                                                                   \
    TEST_CASE_TEMPLATE_DEFINE("event_bus conformance", GatehouseBusFactory, gatehouse_event_bus_conformance_id) { \
        using namespace gatehouse::testing::bus_conformance;                                                      \
        GatehouseBusFactory factory;                                                                              \
        node a = join(factory, "node-a");                                                                         \
        node b = join(factory, "node-b");                                                                         \
        node c = join(factory, "node-c");                                                                         \
                                                                                                                  \
        SUBCASE("targeted traffic reaches exactly the declaring nodes, once") {                                   \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-1"));                                        \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::account, "acc-1"));                                      \
            REQUIRE_FALSE(declare(*c.bus, interest_kind::account, "acc-1"));                                      \
            REQUIRE_FALSE(declare(*c.bus, interest_kind::session, "s-2"));                                        \
            REQUIRE_FALSE(declare(*a.bus, interest_kind::session, "s-a"));                                        \
            auto r = publish(*a.bus, message_kind::to_session, "s-1", "to-s1");                                   \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 1);                                                                                  \
            r = publish(*a.bus, message_kind::to_account, "acc-1", "to-acc1");                                    \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 2);                                                                                  \
            r = publish(*a.bus, message_kind::to_node, "node-c", "to-c");                                         \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 1);                                                                                  \
            r = publish(*a.bus, message_kind::to_session, "s-a", "to-self");                                      \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 0); /* the publisher handles its own connections */                                  \
            r = publish(*a.bus, message_kind::to_session, "nobody-holds-this", "to-nobody");                      \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 0);                                                                                  \
            r = publish(*a.bus, message_kind::to_node, "node-unknown", "to-unknown");                             \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 0);                                                                                  \
            fence(a, {&b, &c});                                                                                   \
            const auto got_b = b.inbox->messages();                                                               \
            const auto got_c = c.inbox->messages();                                                               \
            REQUIRE(got_b.size() == 2);                                                                           \
            CHECK(got_b[0].payload == "to-s1");                                                                   \
            CHECK(got_b[0].kind == message_kind::to_session);                                                     \
            CHECK(got_b[0].target == "s-1");                                                                      \
            CHECK(got_b[0].origin == "node-a");                                                                   \
            CHECK(got_b[1].payload == "to-acc1");                                                                 \
            CHECK(got_b[1].kind == message_kind::to_account);                                                     \
            REQUIRE(got_c.size() == 2);                                                                           \
            CHECK(got_c[0].payload == "to-acc1");                                                                 \
            CHECK(got_c[1].payload == "to-c");                                                                    \
            CHECK(got_c[1].kind == message_kind::to_node);                                                        \
            CHECK(got_c[1].target == "node-c");                                                                   \
            CHECK(a.inbox->messages().empty());                                                                   \
            CHECK(b.bus->stats().not_interested == 0);                                                            \
            CHECK(c.bus->stats().duplicates == 0);                                                                \
        }                                                                                                         \
        SUBCASE("group and all traffic reach only interested nodes") {                                            \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::group, "lobby"));                                        \
            REQUIRE_FALSE(declare(*a.bus, interest_kind::group, "lobby"));                                        \
            for (int i = 0; i < 10; ++i) {                                                                        \
                auto r = publish(*a.bus, message_kind::to_group, "lobby", "g" + std::to_string(i));               \
                CHECK_FALSE(r.ec);                                                                                \
                CHECK(r.nodes == 1);                                                                              \
            }                                                                                                     \
            auto r = publish(*a.bus, message_kind::to_group, "empty-room", "nobody");                             \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 0);                                                                                  \
            r = publish(*a.bus, message_kind::to_all, "", "everyone");                                            \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 2);                                                                                  \
            fence(a, {&b, &c});                                                                                   \
            const auto got_b = b.inbox->messages();                                                               \
            REQUIRE(got_b.size() == 11);                                                                          \
            for (int i = 0; i < 10; ++i) {                                                                        \
                CHECK(got_b[static_cast<std::size_t>(i)].payload == "g" + std::to_string(i));                     \
                CHECK(got_b[static_cast<std::size_t>(i)].kind == message_kind::to_group);                         \
                CHECK(got_b[static_cast<std::size_t>(i)].target == "lobby");                                      \
            }                                                                                                     \
            CHECK(got_b[10].payload == "everyone");                                                               \
            const auto got_c = c.inbox->messages();                                                               \
            REQUIRE(got_c.size() == 1);                                                                           \
            CHECK(got_c[0].payload == "everyone");                                                                \
            CHECK(got_c[0].kind == message_kind::to_all);                                                         \
            /* Not even dropped at c: group traffic never reached it. */                                          \
            CHECK(c.bus->stats().not_interested == 0);                                                            \
            CHECK(a.inbox->messages().empty());                                                                   \
        }                                                                                                         \
        SUBCASE("a withdrawn interest stops delivery") {                                                          \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::group, "room"));                                         \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-w"));                                        \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::account, "acc-w"));                                      \
            CHECK(publish(*a.bus, message_kind::to_group, "room", "before").nodes == 1);                          \
            REQUIRE(b.inbox->wait_for("before"));                                                                 \
            REQUIRE_FALSE(withdraw(*b.bus, interest_kind::group, "room"));                                        \
            REQUIRE_FALSE(withdraw(*b.bus, interest_kind::session, "s-w"));                                       \
            REQUIRE_FALSE(withdraw(*b.bus, interest_kind::account, "acc-w"));                                     \
            REQUIRE_FALSE(withdraw(*b.bus, interest_kind::account, "never-declared"));                            \
            CHECK(publish(*a.bus, message_kind::to_group, "room", "after-g").nodes == 0);                         \
            CHECK(publish(*a.bus, message_kind::to_session, "s-w", "after-s").nodes == 0);                        \
            CHECK(publish(*a.bus, message_kind::to_account, "acc-w", "after-a").nodes == 0);                      \
            fence(a, {&b});                                                                                       \
            CHECK(b.inbox->messages().size() == 1);                                                               \
        }                                                                                                         \
        SUBCASE("interest toggled without waiting ends in the last state") {                                      \
            for (const auto kind : {interest_kind::group, interest_kind::session, interest_kind::account}) {     \
                CAPTURE(static_cast<int>(kind));                                                                 \
                std::vector<std::future<std::error_code>> done;                                                  \
                auto step = [&](bool on, const std::string& name) {                                              \
                    auto p = std::make_shared<std::promise<std::error_code>>();                                  \
                    done.push_back(p->get_future());                                                             \
                    auto cb = [p](std::error_code ec) { p->set_value(ec); };                                     \
                    if (on) b.bus->declare_interest(kind, name, cb);                                             \
                    else b.bus->withdraw_interest(kind, name, cb);                                               \
                };                                                                                               \
                for (int i = 0; i < 3; ++i) {                                                                    \
                    step(true, "on");                                                                            \
                    step(false, "on");                                                                           \
                    step(true, "on");                                                                            \
                    step(true, "off");                                                                           \
                    step(false, "off");                                                                          \
                }                                                                                                \
                for (auto& f : done) CHECK_FALSE(await_future(f, "toggled interest"));                          \
                const auto k = kind == interest_kind::group     ? message_kind::to_group                       \
                               : kind == interest_kind::session ? message_kind::to_session                     \
                                                                : message_kind::to_account;                    \
                CHECK(publish(*a.bus, k, "on", "toggled-on").nodes == 1);                                        \
                CHECK(publish(*a.bus, k, "off", "toggled-off").nodes == 0);                                      \
                fence(a, {&b});                                                                                   \
                CHECK(b.inbox->count("toggled-on") == 1);                                                        \
                CHECK(b.inbox->count("toggled-off") == 0);                                                       \
                REQUIRE_FALSE(withdraw(*b.bus, kind, "on"));                                                     \
                b.inbox = std::make_unique<collector>();                                                          \
                REQUIRE_FALSE(subscribe(*b.bus, *b.inbox));                                                       \
            }                                                                                                    \
        }                                                                                                         \
        SUBCASE("revocations reach every node holding the session or account") {                                 \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-r"));                                        \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::account, "acc-r"));                                      \
            REQUIRE_FALSE(declare(*c.bus, interest_kind::account, "acc-r"));                                      \
            std::promise<publish_result> p;                                                                       \
            auto f = p.get_future();                                                                              \
            a.bus->revoke_account("acc-r", "kicked", [&p](std::error_code ec, std::size_t n) {                    \
                p.set_value({ec, n});                                                                             \
            });                                                                                                   \
            const auto r = await_future(f, "revoke_account");                                                     \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 2);                                                                                  \
            CHECK(publish(*c.bus, message_kind::revoke_session, "s-r", "logout").nodes == 1);                     \
            fence(a, {&b, &c});                                                                                   \
            fence(c, {&b});                                                                                       \
            const auto got_b = b.inbox->messages();                                                               \
            REQUIRE(got_b.size() == 2);                                                                           \
            CHECK(got_b[0].kind == message_kind::revoke_account);                                                 \
            CHECK(got_b[0].payload == "kicked");                                                                  \
            CHECK(got_b[1].kind == message_kind::revoke_session);                                                 \
            CHECK(got_b[1].target == "s-r");                                                                      \
            CHECK(got_b[1].origin == "node-c");                                                                   \
            const auto got_c = c.inbox->messages();                                                               \
            REQUIRE(got_c.size() == 1);                                                                           \
            CHECK(got_c[0].kind == message_kind::revoke_account);                                                 \
            CHECK(got_c[0].target == "acc-r");                                                                    \
        }                                                                                                         \
        SUBCASE("a session declared by another node is taken from its holder") {                                  \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-t"));                                        \
            REQUIRE_FALSE(declare(*c.bus, interest_kind::session, "s-t"));                                        \
            REQUIRE(b.inbox->wait_for("node-c"));                                                                 \
            const auto got_b = b.inbox->messages();                                                               \
            REQUIRE(got_b.size() == 1);                                                                           \
            CHECK(got_b[0].kind == message_kind::session_taken);                                                  \
            CHECK(got_b[0].target == "s-t");                                                                      \
            CHECK(got_b[0].origin == "node-c");                                                                   \
            /* The old holder's late withdrawal leaves the new holder's entry. */                                 \
            REQUIRE_FALSE(withdraw(*b.bus, interest_kind::session, "s-t"));                                       \
            const auto r = publish(*a.bus, message_kind::to_session, "s-t", "to-new-holder");                     \
            CHECK_FALSE(r.ec);                                                                                    \
            CHECK(r.nodes == 1);                                                                                  \
            fence(a, {&b, &c});                                                                                   \
            CHECK(c.inbox->count("to-new-holder") == 1);                                                          \
            CHECK(b.inbox->count("to-new-holder") == 0);                                                          \
            CHECK(c.inbox->messages().size() == 1);                                                               \
        }                                                                                                         \
        SUBCASE("malformed and foreign envelopes are counted and never delivered") {                              \
            const auto good = valid_envelope(message_kind::to_node, "node-b", "good", "node-x", 7);               \
            std::string bad_magic = good;                                                                         \
            bad_magic[0] = 'X';                                                                                   \
            std::string obsolete = good;                                                                          \
            obsolete[2] = 0;                                                                                      \
            std::string newer = good;                                                                             \
            newer[2] = 2;                                                                                         \
            std::string unknown_kind = good;                                                                      \
            unknown_kind[3] = 9;                                                                                  \
            std::string no_origin = good;                                                                         \
            no_origin[12] = 0;                                                                                    \
            const std::vector<std::string> malformed{"", "g", "not an envelope at all",                           \
                                                     good.substr(0, good.size() - 1), good + "x", bad_magic,      \
                                                     unknown_kind, no_origin, good.substr(0, 10)};                \
            for (const auto& bytes : malformed) factory.inject("node-b", bytes);                                  \
            factory.inject("node-b", obsolete);                                                                   \
            factory.inject("node-b", newer);                                                                      \
            factory.inject("node-b", good);                                                                       \
            REQUIRE(b.inbox->wait_for("good"));                                                                   \
            fence(a, {&b});                                                                                       \
            const auto s = b.bus->stats();                                                                        \
            CHECK(s.malformed == malformed.size());                                                               \
            CHECK(s.incompatible_version == 2);                                                                   \
            CHECK(b.inbox->messages().size() == 1);                                                               \
            /* Still working after the garbage. */                                                                \
            CHECK(publish(*a.bus, message_kind::to_node, "node-b", "after-garbage").nodes == 1);                  \
            CHECK(b.inbox->wait_for("after-garbage"));                                                            \
        }                                                                                                         \
        SUBCASE("duplicate deliveries are suppressed and counted") {                                              \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-d"));                                        \
            const auto dup = valid_envelope(message_kind::to_session, "s-d", "dup", "node-x", 99);                \
            for (int i = 0; i < 3; ++i) factory.inject("node-b", dup);                                            \
            /* Same id from another origin is a different message. */                                             \
            factory.inject("node-b", valid_envelope(message_kind::to_session, "s-d", "dup", "node-y", 99));       \
            /* A message for an undeclared session is not delivered either. */                                    \
            factory.inject("node-b", valid_envelope(message_kind::to_session, "s-other", "stray", "node-x", 100)); \
            fence(a, {&b});                                                                                       \
            CHECK(b.inbox->count("dup") == 2);                                                                    \
            CHECK(b.inbox->count("stray") == 0);                                                                  \
            const auto s = b.bus->stats();                                                                        \
            CHECK(s.duplicates == 2);                                                                             \
            CHECK(s.not_interested == 1);                                                                         \
        }                                                                                                         \
        SUBCASE("bad arguments fail with specific errors") {                                                      \
            CHECK(publish(*a.bus, message_kind::to_session, "", "x").ec == cluster_errc::invalid_target);         \
            CHECK(publish(*a.bus, message_kind::to_all, "t", "x").ec == cluster_errc::invalid_target);            \
            CHECK(publish(*a.bus, message_kind::to_group, std::string(gatehouse::cluster::max_target_size + 1, 'g'), \
                          "x").ec == cluster_errc::invalid_target);                                               \
            CHECK(publish(*a.bus, message_kind::to_node, "bad node id", "x").ec == cluster_errc::invalid_target); \
            CHECK(publish(*a.bus, static_cast<message_kind>(0), "t", "x").ec == cluster_errc::invalid_target);    \
            CHECK(publish(*a.bus, message_kind::session_taken, "s", "x").ec ==                                    \
                  cluster_errc::kind_not_publishable);                                                            \
            CHECK(publish(*a.bus, message_kind::to_all, "",                                                       \
                          std::string(gatehouse::cluster::max_payload_size + 1, 'p')).ec ==                       \
                  cluster_errc::payload_too_large);                                                               \
            CHECK(declare(*a.bus, interest_kind::group, "") == cluster_errc::invalid_target);                     \
            CHECK(withdraw(*a.bus, interest_kind::session, "") == cluster_errc::invalid_target);                  \
            CHECK(declare(*a.bus, static_cast<interest_kind>(9), "x") == cluster_errc::invalid_target);           \
            CHECK(alive(*a.bus, "bad node id").first == cluster_errc::invalid_node_id);                           \
            CHECK(a.bus->stats().publish_failed == 7);                                                            \
            fence(a, {&b, &c});                                                                                   \
            CHECK(b.inbox->messages().empty());                                                                   \
        }                                                                                                         \
        SUBCASE("liveness and closing") {                                                                         \
            CHECK(alive(*a.bus, "node-b") == std::pair<std::error_code, bool>{{}, true});                         \
            CHECK(alive(*a.bus, "node-a") == std::pair<std::error_code, bool>{{}, true});                         \
            CHECK(alive(*a.bus, "node-z") == std::pair<std::error_code, bool>{{}, false});                        \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-c"));                                        \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::group, "room-c"));                                       \
            b.bus->close();                                                                                       \
            b.bus->close(); /* idempotent */                                                                      \
            /* Leaving takes effect promptly, not necessarily before close() returns. */                         \
            CHECK(eventually([&] { return alive(*a.bus, "node-b") == std::pair<std::error_code, bool>{{}, false}; })); \
            CHECK(publish(*a.bus, message_kind::to_session, "s-c", "gone").nodes == 0);                           \
            CHECK(publish(*a.bus, message_kind::to_node, "node-b", "gone").nodes == 0);                           \
            CHECK(eventually([&] { return publish(*a.bus, message_kind::to_group, "room-c", "gone").nodes == 0; })); \
            CHECK(eventually([&] { return publish(*a.bus, message_kind::to_all, "", "after-close").nodes == 1; })); \
            CHECK(publish(*b.bus, message_kind::to_all, "", "x").ec == cluster_errc::bus_closed);                 \
            CHECK(declare(*b.bus, interest_kind::group, "g") == cluster_errc::bus_closed);                        \
            CHECK(alive(*b.bus, "node-a").first == cluster_errc::bus_closed);                                     \
            fence(a, {&c});                                                                                       \
            CHECK(b.inbox->messages().empty());                                                                   \
        }                                                                                                         \
        SUBCASE("concurrent publishers: every message exactly once") {                                            \
            REQUIRE_FALSE(declare(*b.bus, interest_kind::session, "s-many"));                                     \
            REQUIRE_FALSE(declare(*c.bus, interest_kind::group, "many"));                                         \
            constexpr int threads = 4, per_thread = 100;                                                          \
            std::atomic<int> failures{0}, completed{0};                                                           \
            std::vector<std::thread> workers;                                                                     \
            for (int t = 0; t < threads; ++t) {                                                                   \
                workers.emplace_back([&, t] {                                                                     \
                    for (int i = 0; i < per_thread; ++i) {                                                        \
                        const auto tag = std::to_string(t) + ":" + std::to_string(i);                             \
                        auto count = [&](std::error_code ec, std::size_t n) {                                     \
                            if (ec || n != 1) ++failures;                                                         \
                            ++completed;                                                                          \
                        };                                                                                        \
                        a.bus->publish_to_session("s-many", "s" + tag, count);                                    \
                        a.bus->publish_to_group("many", "g" + tag, count);                                        \
                    }                                                                                             \
                });                                                                                               \
            }                                                                                                     \
            for (auto& w : workers) w.join();                                                                     \
            const auto until = std::chrono::steady_clock::now() + deadline;                                       \
            while (completed.load() < 2 * threads * per_thread && std::chrono::steady_clock::now() < until)       \
                std::this_thread::sleep_for(std::chrono::milliseconds(5));                                        \
            REQUIRE(completed.load() == 2 * threads * per_thread);                                                \
            CHECK(failures.load() == 0);                                                                          \
            fence(a, {&b, &c});                                                                                   \
            const auto got_b = b.inbox->messages();                                                               \
            const auto got_c = c.inbox->messages();                                                               \
            CHECK(got_b.size() == threads * per_thread);                                                          \
            CHECK(got_c.size() == threads * per_thread);                                                          \
            std::set<std::string> distinct;                                                                       \
            for (const auto& m : got_b) distinct.insert(m.payload);                                               \
            for (const auto& m : got_c) distinct.insert(m.payload);                                               \
            CHECK(distinct.size() == 2 * threads * per_thread);                                                   \
        }                                                                                                         \
    }                                                                                                             \
    TEST_CASE_TEMPLATE_INVOKE(gatehouse_event_bus_conformance_id, Factory)
