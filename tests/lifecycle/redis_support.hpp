// Shared pieces of the Redis lifecycle tests (test_liveness_redis.cpp,
// test_cluster_lifecycle.cpp): a gateway node on a loopback port reporting to
// a recording_observer, with a redis_session_store and optionally a
// redis_event_bus; synchronous wrappers over the store and presence calls;
// polling with generous deadlines (the machine is shared and TSan is slow).
#pragma once

#include "../cluster/io_runner.hpp"
#include "../server/socket_harness.hpp"
#include "../support/redis_server.hpp"
#include "recording_observer.hpp"

#include <gatehouse/adapters/redis/redis_event_bus.hpp>
#include <gatehouse/adapters/redis/redis_session_store.hpp>

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gatehouse::test::redis_lifecycle {

using namespace gatehouse::test::sockets;
namespace rd = gatehouse::adapters::redis;
namespace cl = gatehouse::cluster;

/// Waits until `condition` holds (polling every 5 ms), at most `timeout`.
inline bool eventually(const std::function<bool()>& condition, ms timeout = ms(8000)) {
    const auto deadline = clock_type::now() + timeout;
    while (!condition()) {
        if (clock_type::now() >= deadline) return false;
        std::this_thread::sleep_for(ms(5));
    }
    return true;
}

/// store.load, synchronously (the completion runs on the store's thread).
inline std::error_code load_session(session::session_store& store, const std::string& id,
                                    session::session_record* out = nullptr) {
    auto answer = std::make_shared<std::promise<std::pair<std::error_code, session::session_record>>>();
    auto future = answer->get_future();
    store.load(id, [answer](std::error_code ec, session::session_record r) { answer->set_value({ec, std::move(r)}); });
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
        return make_error_code(std::errc::timed_out);
    auto got = future.get();
    if (out) *out = std::move(got.second);
    return got.first;
}

/// gateway::account_presence, synchronously.
struct presence_answer {
    std::error_code error;
    std::vector<s::session_presence> sessions;
    const s::session_presence* find(const std::string& session_id) const {
        for (const auto& p : sessions)
            if (p.session_id == session_id) return &p;
        return nullptr;
    }
};
inline presence_answer account_presence(s::gateway& gw, const std::string& account, std::size_t limit = 64) {
    auto answer = std::make_shared<std::promise<presence_answer>>();
    auto future = answer->get_future();
    gw.account_presence(
        account,
        [answer](std::error_code ec, std::vector<s::session_presence> list) {
            answer->set_value({ec, std::move(list)});
        },
        limit);
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
        return {make_error_code(std::errc::timed_out), {}};
    return future.get();
}

/// bus.node_alive, synchronously (false on error).
inline bool node_alive(cl::event_bus& bus, const std::string& node) {
    auto answer = std::make_shared<std::promise<bool>>();
    auto future = answer->get_future();
    bus.node_alive(node, [answer](std::error_code ec, bool alive) { answer->set_value(!ec && alive); });
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return false;
    return future.get();
}

inline std::string state_name(s::session_presence::state st) {
    switch (st) {
    case s::session_presence::state::connected: return "connected";
    case s::session_presence::state::parked: return "parked";
    case s::session_presence::state::held: return "held";
    }
    return "?";
}

/// "session@node(state)" for each entry, for failure messages.
inline std::string describe(const std::vector<s::session_presence>& list) {
    std::string out;
    for (const auto& p : list) {
        if (!out.empty()) out += ' ';
        out += p.session_id.substr(0, 8) + "@" + p.node_id + "(" + state_name(p.where) + ")";
    }
    return out.empty() ? "(none)" : out;
}

/// Gateway options with parking on: a dropped client's session waits 30 s.
inline s::gateway_options parking_options() {
    auto o = socket_options();
    o.reconnect_queue_max_bytes = 64 * 1024;
    o.reconnect_window = std::chrono::seconds(30);
    return o;
}

/// Store options with the given idle timeout and max lifetime.
inline rd::redis_session_store_options store_options(int port, ms idle_timeout,
                                                     ms max_lifetime = std::chrono::hours(1)) {
    rd::redis_session_store_options so;
    so.port = port;
    so.idle_timeout = idle_timeout;
    so.max_lifetime = max_lifetime;
    return so;
}

/// One gateway on an ephemeral loopback port with the standard endpoints,
/// the scripted validator and its own recording observer; with `event_bus`
/// a node of a cluster.
struct observed_node {
    observed_node(s::gateway_options options, std::shared_ptr<session::session_store> shared_store,
                  std::shared_ptr<cl::event_bus> event_bus = nullptr)
        : obs(std::make_shared<recording_observer>()),
          validator(std::make_shared<scripted_validator>()),
          bus(std::move(event_bus)) {
        options.port = 0;
        options.listen_address = "127.0.0.1";
        options.event_bus = bus;
        options.observer = obs;
        gw = std::make_unique<s::gateway>(std::move(options), validator, std::move(shared_store));
        add_standard_endpoints(*gw, held);
        REQUIRE_FALSE(gw->listen());
        port = gw->local_port();
        REQUIRE(port != 0);
        thread = std::thread([this] { gw->run(); });
    }
    ~observed_node() {
        gw->stop();
        thread.join();
        gw.reset();
        if (bus) bus->close();
    }
    observed_node(const observed_node&) = delete;
    observed_node& operator=(const observed_node&) = delete;

    /// A client of `session_id` (account `account`), manifest read.
    std::unique_ptr<ws_client> connect(const std::string& account, const std::string& session_id) const {
        auto c = std::make_unique<ws_client>(port);
        c->connect(token(account, session_id));
        return c;
    }

    /// Waits until this node reported at least `n` events for the session.
    bool wait_events(const std::string& session_id, std::size_t n, ms timeout = ms(8000)) const {
        return obs->wait_for(session_id, n, timeout);
    }

    std::string id() const { return bus ? std::string(bus->node_id()) : std::string(gw->options().node_id); }

    std::shared_ptr<recording_observer> obs;
    std::shared_ptr<scripted_validator> validator;
    std::shared_ptr<held_calls> held = std::make_shared<held_calls>();
    std::shared_ptr<cl::event_bus> bus;
    std::unique_ptr<s::gateway> gw;
    std::uint16_t port = 0;
    std::thread thread;
};

/// Events of `kind` a recorder holds for the session.
inline std::size_t count_kind(const recording_observer& obs, const std::string& session_id, lifecycle_kind kind) {
    std::size_t n = 0;
    for (const auto& e : obs.events_of(session_id))
        if (e.kind == kind) ++n;
    return n;
}

/// The kinds of the session's events on one node, space-separated.
inline std::string kinds(const recording_observer& obs, const std::string& session_id) {
    std::string out;
    for (const auto& e : obs.events_of(session_id)) {
        if (!out.empty()) out += ' ';
        out += lifecycle_kind_name(e.kind);
    }
    return out;
}

/// The JSON of a server event frame, or a discarded value.
inline nlohmann::json event_json(const server_frame& f) {
    if (f.opcode != lg::ws_opcode::binary) return nlohmann::json::value_t::discarded;
    p::frame_view view;
    if (p::decode_frame(p::bytes_view(f.payload), view) || view.is_response())
        return nlohmann::json::value_t::discarded;
    return nlohmann::json::parse(view.payload.as_chars(), nullptr, false);
}

/// Reads frames until one event named `name` (frames before it are kept in
/// `received`); also looks at what `received` already holds.
inline std::optional<nlohmann::json> wait_event(ws_client& c, const std::string& name, ms timeout = ms(8000)) {
    for (auto it = c.received.begin(); it != c.received.end(); ++it) {
        const auto body = event_json(*it);
        if (body.is_object() && body.value("eventName", "") == name) {
            c.received.erase(it);
            return body;
        }
    }
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<ms>(deadline - clock_type::now());
        if (left <= ms(0)) return std::nullopt;
        auto f = c.read_frame(left);
        if (!f) return std::nullopt;
        const auto body = event_json(*f);
        if (body.is_object() && body.value("eventName", "") == name) return body;
        c.received.push_back(std::move(*f));
    }
}

/// Reads frames until the server's close frame; returns it (code, reason).
inline std::optional<server_frame> wait_close_frame(ws_client& c, ms timeout = ms(8000)) {
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        auto f = c.read_frame(std::chrono::duration_cast<ms>(deadline - clock_type::now()));
        if (!f) return std::nullopt;
        if (f->opcode == lg::ws_opcode::close) return f;
        c.received.push_back(std::move(*f));
    }
}

/// One /echo round trip; true when answered ok with the same body.
inline bool echo(ws_client& c, std::uint64_t id, ms timeout = ms(5000)) {
    const std::string body = "{\"n\":" + std::to_string(id) + "}";
    const auto reply = c.call("/echo", body, id, timeout);
    return reply && reply->code == p::response_code::ok && reply->payload.as_chars() == body;
}

}  // namespace gatehouse::test::redis_lifecycle
